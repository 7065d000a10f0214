import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, Nullable, StrictObject } from '../../src/schemas.js';

/**
 * A scope of this instance: the kernel's or one a loaded pack declares (`app.scopes`). The list
 * is known at start, so the bodies that grant scopes are built then (scopedBodies). A scope of a
 * disabled pack cannot be granted; keys that already hold one keep it, inert until the pack is back.
 */
const scopeList = (names: readonly string[], description: string) =>
  Type.Array(
    Type.Union(
      names.map((s) => Type.Literal(s)),
      { description: "a scope of this instance: the kernel's or one a loaded pack declares" },
    ),
    { minItems: 1, maxItems: names.length, uniqueItems: true, description },
  );

const ClientName = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'unique; letters, digits, `.`, `_`, `-`' });
const Owner = Type.String({ minLength: 1, maxLength: 200, description: 'team or person responsible for the client' });
const Description = Type.String({ maxLength: 1000 });
const Status = Type.Union([Type.Literal('active'), Type.Literal('suspended')]);
const RateLimitOverride = Nullable(
  StrictObject(
    {
      max: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
      windowSeconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
    },
    { description: "the client's own limit, used by the rate-limit pack instead of the rules' default; null for none" },
  ),
);
const DailyQuota = Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'requests per UTC day; null for none' }));

export const KeyIdSchema = Type.String({ pattern: '^[0-9A-Za-z]{12}$', description: 'public key id: the 12 characters after `vhk_`' });

export const ApiClientSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  owner: Type.String(),
  description: Type.String(),
  scopes: Type.Array(Type.String()),
  status: Status,
  rateLimit: Type.Union([Type.Object({ max: Type.Integer(), windowSeconds: Type.Integer() }), Type.Null()]),
  dailyQuota: Type.Union([Type.Integer(), Type.Null()]),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type ApiClient = Static<typeof ApiClientSchema>;


export const ClientQuery = StrictObject({
  ...PageQuerySchema.properties,
  status: Type.Optional(Status),
  owner: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
});
export type ClientFilter = Static<typeof ClientQuery>;

export const ApiKeySchema = Type.Object({
  id: Type.Integer(),
  keyId: Type.String(),
  clientId: Type.Integer(),
  name: Type.String(),
  scopes: Type.Array(Type.String()),
  status: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked')], { description: 'at the time of the response' }),
  expiresAt: Type.Union([IsoDate(), Type.Null()]),
  revokedAt: Type.Union([IsoDate(), Type.Null()]),
  revokedReason: Type.Union([Type.String(), Type.Null()]),
  replacedBy: Type.Union([Type.String(), Type.Null()], { description: 'key id of the key that replaced this one by rotation' }),
  lastUsedAt: Type.Union([IsoDate(), Type.Null()], { description: 'written in batches: may lag by a few seconds' }),
  createdAt: IsoDate(),
});
export type ApiKey = Static<typeof ApiKeySchema>;

export const NewApiKeySchema = Type.Intersect([
  ApiKeySchema,
  Type.Object({ token: Type.String({ description: 'the key itself: shown once, never again; store it in a secret manager' }) }),
]);
export type NewApiKey = Static<typeof NewApiKeySchema>;

/** The bodies that grant scopes, for the scopes of this instance (`app.scopes.names`). */
export function scopedBodies(scopes: readonly string[]) {
  const clientScopes = scopeList(scopes, 'what keys of this client may hold');
  return {
    CreateClientBody: StrictObject({
      name: ClientName,
      owner: Owner,
      description: Type.Optional(Description),
      scopes: clientScopes,
      status: Type.Optional(Status),
      rateLimit: Type.Optional(RateLimitOverride),
      dailyQuota: Type.Optional(DailyQuota),
    }),
    UpdateClientBody: StrictObject(
      {
        name: Type.Optional(ClientName),
        owner: Type.Optional(Owner),
        description: Type.Optional(Description),
        scopes: Type.Optional(clientScopes),
        status: Type.Optional(Status),
        rateLimit: Type.Optional(RateLimitOverride),
        dailyQuota: Type.Optional(DailyQuota),
        reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'recorded in the audit trail' })),
      },
      { minProperties: 1 },
    ),
    CreateKeyBody: StrictObject({
      name: Type.String({ minLength: 1, maxLength: 100 }),
      scopes: Type.Optional(scopeList(scopes, "a subset of the client's scopes; default: all of them")),
      expiresAt: Type.Optional(IsoDate('when the key stops working; must be in the future')),
    }),
  };
}
type ScopedBodies = ReturnType<typeof scopedBodies>;
export type CreateClient = Static<ScopedBodies['CreateClientBody']>;
export type UpdateClient = Static<ScopedBodies['UpdateClientBody']>;
export type CreateKey = Static<ScopedBodies['CreateKeyBody']>;

export const RevokeKeyBody = StrictObject({ reason: Type.String({ minLength: 1, maxLength: 500 }) });

export const RotateKeyBody = StrictObject({
  graceSeconds: Type.Integer({ minimum: 0, maximum: 30 * 86_400, description: 'how long the old key keeps working; 0 revokes it at once' }),
  reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
});

export const KeyParams = StrictObject({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), keyId: KeyIdSchema });

export const KeyQuery = StrictObject({
  ...PageQuerySchema.properties,
  status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked')])),
});
export type KeyFilter = Static<typeof KeyQuery>;
