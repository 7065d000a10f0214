import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';
import { RULE_SCOPES } from './rules.js';

export const MAX_LIMIT = 1_000_000_000;
export const MAX_WINDOW_SECONDS = 86_400;

const Scope = Type.Union(
  RULE_SCOPES.map((s) => Type.Literal(s)),
  { description: 'what the rule limits; precedence: api_key > client > route > ip (exact values before `*`) > global' },
);
const Match = Type.String({
  minLength: 1,
  maxLength: 64,
  description: "`*` (each caller) or one value: an IP address (scope ip), a key id (api_key), a client id (client); global and route rules take `*`",
});
const Route = Type.String({
  minLength: 1,
  maxLength: 300,
  description: "scope route only: `[METHOD ]/path` (exact) or `[METHOD ]/prefix*`, e.g. `GET /system/flags*`",
});
const Max = Type.Integer({ minimum: 1, maximum: MAX_LIMIT, description: 'requests allowed per window' });
const WindowSeconds = Type.Integer({ minimum: 1, maximum: MAX_WINDOW_SECONDS, description: 'window length in seconds (at most one day)' });
const Description = Type.String({ maxLength: 1000 });

export const RateLimitRuleSchema = Type.Object({
  id: Type.Integer(),
  scope: Scope,
  match: Type.String(),
  route: Type.Union([Type.String(), Type.Null()]),
  max: Type.Integer(),
  windowSeconds: Type.Integer(),
  enabled: Type.Boolean(),
  description: Type.String(),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type RateLimitRule = Static<typeof RateLimitRuleSchema>;

export const CreateRateLimitBody = StrictObject({
  scope: Scope,
  match: Type.Optional(Match),
  route: Type.Optional(Type.Union([Route, Type.Null()])),
  max: Max,
  windowSeconds: WindowSeconds,
  enabled: Type.Optional(Type.Boolean()),
  description: Type.Optional(Description),
});
export type CreateRateLimit = Static<typeof CreateRateLimitBody>;

export const UpdateRateLimitBody = StrictObject(
  {
    scope: Type.Optional(Scope),
    match: Type.Optional(Match),
    route: Type.Optional(Type.Union([Route, Type.Null()])),
    max: Type.Optional(Max),
    windowSeconds: Type.Optional(WindowSeconds),
    enabled: Type.Optional(Type.Boolean()),
    description: Type.Optional(Description),
  },
  { minProperties: 1 },
);
export type UpdateRateLimit = Static<typeof UpdateRateLimitBody>;

export const RateLimitQuery = StrictObject({
  ...PageQuerySchema.properties,
  scope: Type.Optional(Scope),
  enabled: Type.Optional(Type.Boolean()),
});
export type RateLimitFilter = Static<typeof RateLimitQuery>;

export const StatusQuery = StrictObject({
  key: Type.Optional(
    Type.String({
      minLength: 4,
      maxLength: 80,
      pattern: '^(ip:[0-9A-Fa-f.:]{2,45}|api_key:[0-9A-Za-z]{12}|client:[1-9][0-9]{0,15})$',
      description: 'subject: `ip:<address>`, `api_key:<keyId>` or `client:<id>`; omitted: the caller',
    }),
  ),
});

const LimitUsage = Type.Object({
  policy: Type.String({ description: '`rule-<id>`, `client-<id>` (the client\'s own limit) or `default`' }),
  scope: Type.String(),
  ruleId: Type.Union([Type.Integer(), Type.Null()]),
  route: Type.Union([Type.String(), Type.Null()]),
  subject: Type.String({ description: 'who the counter counts' }),
  max: Type.Integer(),
  windowSeconds: Type.Integer(),
  used: Type.Integer({ description: 'requests counted in the current window' }),
  remaining: Type.Integer(),
  resetSeconds: Type.Integer({ description: 'seconds until the current window ends (0: no window open)' }),
});

export const StatusSchema = Type.Object({
  subject: Type.String(),
  store: Type.Union([Type.Literal('redis'), Type.Literal('memory')]),
  limits: Type.Array(LimitUsage, {
    description: 'first: the limit for requests no route rule covers; then one entry per route rule (counted separately)',
  }),
  quota: Type.Union([
    Type.Object({
      limit: Type.Union([Type.Integer(), Type.Null()], { description: 'known for the caller; null when looking up another client' }),
      used: Type.Integer(),
      remaining: Type.Union([Type.Integer(), Type.Null()]),
      day: Type.String({ description: 'UTC day counted' }),
      resetSeconds: Type.Integer({ description: 'seconds until midnight UTC' }),
    }),
    Type.Null(),
  ]),
});
export type Status = Static<typeof StatusSchema>;
