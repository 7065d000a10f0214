import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, Nullable, StrictObject } from '../../src/schemas.js';
import { HONEYPOT_SEVERITIES, HONEYPOT_TYPES } from './table.js';

const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'unique; letters, digits, `.`, `_`, `-`' });
const Description = Type.String({ maxLength: 1000 });
/** What a decoy path may look like: an absolute path of printable characters, optionally ending in `/*`. */
const DecoyPath = Type.String({
  minLength: 2,
  maxLength: 512,
  pattern: '^/[\\x21-\\x7e]*$',
  description: 'absolute path, matched case-insensitively without query string or trailing slash; `/wp-admin/*` matches everything below `/wp-admin`',
});
export const RESPONSE_STATUSES = [200, 401, 403, 404] as const;
const ResponseStatus = Type.Union(
  RESPONSE_STATUSES.map((s) => Type.Literal(s)),
  { description: 'status the decoy answers with' },
);
export const CONTENT_TYPES = ['text/plain; charset=utf-8', 'text/html; charset=utf-8', 'application/json; charset=utf-8'] as const;
const ContentType = Type.Union(CONTENT_TYPES.map((c) => Type.Literal(c)));
export const TEMPLATES = ['dotenv', 'wp-login', 'admin-login', 'json-unauthorized', 'not-found'] as const;
const Template = Type.Union(
  TEMPLATES.map((t) => Type.Literal(t)),
  { description: 'a ready-made plausible answer (status, content type and body); explicit fields override it' },
);
const Severity = Type.Union(HONEYPOT_SEVERITIES.map((s) => Type.Literal(s)));
const TtlSeconds = Type.Integer({ minimum: 60, maximum: 31_536_000, description: 'lifetime of the first block rule; repeat sources get it doubled per earlier honeypot block' });

export const HoneypotSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  type: Type.Union(HONEYPOT_TYPES.map((t) => Type.Literal(t))),
  description: Type.String(),
  enabled: Type.Boolean(),
  path: Nullable(Type.String()),
  response: Nullable(Type.Object({ status: Type.Integer(), contentType: Type.String(), body: Type.String() })),
  /** `canary_key`: the key's public id (the token itself is shown once, at creation). */
  keyId: Nullable(Type.String()),
  autoBlock: Type.Boolean(),
  blockTtlSeconds: Nullable(Type.Integer()),
  severity: Severity,
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type Honeypot = Static<typeof HoneypotSchema>;

export const CreatedHoneypotSchema = Type.Intersect([
  HoneypotSchema,
  Type.Object({ token: Type.Optional(Type.String({ description: '`canary_key` only: the canary key, shown in this response only; plant it where a thief would find it' })) }),
]);

export const CreateHoneypotBody = StrictObject({
  name: Name,
  type: Type.Union(HONEYPOT_TYPES.map((t) => Type.Literal(t)), { description: '`path`: a decoy path; `canary_key`: a decoy API key' }),
  description: Type.Optional(Description),
  enabled: Type.Optional(Type.Boolean()),
  path: Type.Optional(DecoyPath),
  template: Type.Optional(Template),
  status: Type.Optional(ResponseStatus),
  contentType: Type.Optional(ContentType),
  body: Type.Optional(Type.String({ maxLength: 65_536, description: 'the decoy\'s answer body' })),
  autoBlock: Type.Optional(Type.Boolean({ description: 'block the source address on a hit (blocklist rule of origin `honeypot`)' })),
  blockTtlSeconds: Type.Optional(Nullable(TtlSeconds)),
  severity: Type.Optional(Severity),
});
export type CreateHoneypot = Static<typeof CreateHoneypotBody>;

export const UpdateHoneypotBody = StrictObject(
  {
    name: Type.Optional(Name),
    description: Type.Optional(Description),
    enabled: Type.Optional(Type.Boolean()),
    path: Type.Optional(DecoyPath),
    status: Type.Optional(ResponseStatus),
    contentType: Type.Optional(ContentType),
    body: Type.Optional(Type.String({ maxLength: 65_536 })),
    autoBlock: Type.Optional(Type.Boolean()),
    blockTtlSeconds: Type.Optional(Nullable(TtlSeconds)),
    severity: Type.Optional(Severity),
  },
  { minProperties: 1 },
);
export type UpdateHoneypot = Static<typeof UpdateHoneypotBody>;

export const HoneypotQuery = StrictObject({
  ...PageQuerySchema.properties,
  type: Type.Optional(Type.Union(HONEYPOT_TYPES.map((t) => Type.Literal(t)))),
});
export type HoneypotFilter = Static<typeof HoneypotQuery>;

export const TelemetrySchema = Type.Object({
  id: Type.Integer(),
  honeypotId: Type.Integer(),
  occurredAt: IsoDate(),
  sourceIp: Type.String(),
  userAgent: Nullable(Type.String()),
  method: Type.String(),
  path: Type.String(),
  headers: Type.Record(Type.String(), Type.String()),
  correlationId: Type.String(),
});
export type Telemetry = Static<typeof TelemetrySchema>;

export const TelemetryQuery = StrictObject({
  ...PageQuerySchema.properties,
  sourceIp: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'only hits from this address' })),
});
export type TelemetryFilter = Static<typeof TelemetryQuery>;
