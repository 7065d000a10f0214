import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, Nullable, QueryTimestamp, StrictObject } from '../../src/schemas.js';

// Bodies and queries are StrictObject (unknown fields are a 400 naming the field).

const Enum = <T extends string>(values: readonly T[], options: { description?: string; default?: T } = {}) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...options });

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export const ORIGINS = ['manual', 'honeypot', 'rate_limit', 'auth_failure', 'action', 'import'] as const;
export const MODES = ['enforce', 'monitor'] as const;
export const ACTIONS = ['block', 'allow'] as const;
export const TYPES = ['ip', 'cidr', 'user_agent', 'path', 'api_client'] as const;

const PolicyName = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'unique; letters, digits, `.`, `_`, `-`' });

export const PolicySchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  description: Type.String(),
  enabled: Type.Boolean(),
  mode: Enum(MODES),
  /** Rules in the policy that have not expired. */
  activeRules: Type.Integer({ description: 'rules of this policy that have not expired' }),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type Policy = Static<typeof PolicySchema>;

export const CreatePolicyBody = StrictObject({
  name: PolicyName,
  description: Type.Optional(Type.String({ maxLength: 1000 })),
  enabled: Type.Optional(Type.Boolean({ default: true })),
  mode: Type.Optional(Enum(MODES, { description: '`enforce` refuses matching requests; `monitor` only counts and logs them' })),
});
export type CreatePolicy = Static<typeof CreatePolicyBody>;

export const UpdatePolicyBody = StrictObject(
  {
    name: Type.Optional(PolicyName),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    enabled: Type.Optional(Type.Boolean()),
    mode: Type.Optional(Enum(MODES)),
    reason: Type.Optional(
      Type.String({ minLength: 1, maxLength: 500, description: 'why (kept in the audit entry); required to disable the built-in `automatic` policy or switch it to monitor' }),
    ),
  },
  { minProperties: 1 },
);
export type UpdatePolicy = Static<typeof UpdatePolicyBody>;

export const PolicyQuery = StrictObject({ ...PageQuerySchema.properties });

const RuleValue = Type.String({
  minLength: 1,
  maxLength: 512,
  description:
    '`ip`: an IPv4/IPv6 address; `cidr`: a network (`10.0.0.0/8`, `2001:db8::/32`); `user_agent`: a case-insensitive substring, or a glob with `*`/`?`; `path`: a prefix of the normalised path, or a glob with `*`/`?`; `api_client`: a client id',
});
const Reason = Type.String({ maxLength: 500 });

export const RuleSchema = Type.Object({
  id: Type.Integer(),
  policyId: Nullable(Type.Integer()),
  type: Enum(TYPES),
  action: Enum(ACTIONS),
  value: Type.String(),
  severity: Enum(SEVERITIES),
  reason: Type.String(),
  origin: Enum(ORIGINS),
  expiresAt: Nullable(IsoDate()),
  /** Not expired, and its policy (if any) enabled. */
  active: Type.Boolean(),
  offences: Type.Integer(),
  lastOffenceAt: IsoDate(),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type Rule = Static<typeof RuleSchema>;

const Force = Type.Optional(Type.Boolean({ description: 'write the rule even though it would block the request writing it (the operator\'s own address, user agent, path or client); audited as forced' }));

const CreateRuleFields = {
  type: Enum(TYPES),
  value: RuleValue,
  action: Type.Optional(Enum(ACTIONS, { description: '`allow` rules win over every block (default `block`)' })),
  severity: Type.Optional(Enum(SEVERITIES)),
  reason: Type.Optional(Reason),
  // `action` is refused: only an approved block_ip action makes such a rule (and it is protected).
  origin: Type.Optional(Enum(ORIGINS.filter((o) => o !== 'action'))),
  policyId: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'null: no policy (always enforced)' }))),
  expiresAt: Type.Optional(Nullable(IsoDate('the rule stops matching at this time; null: never'))),
  ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 315_360_000, description: 'instead of `expiresAt`: the rule stops matching this many seconds from now (a decision\'s duration)' })),
};
export const CreateRuleBody = StrictObject({ ...CreateRuleFields, force: Force });
export type CreateRule = Static<typeof CreateRuleBody>;
const BulkRule = StrictObject(CreateRuleFields);

export const UpdateRuleBody = StrictObject(
  {
    action: Type.Optional(Enum(ACTIONS)),
    severity: Type.Optional(Enum(SEVERITIES)),
    reason: Type.Optional(Reason),
    policyId: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }))),
    expiresAt: Type.Optional(Nullable(IsoDate())),
    force: Force,
  },
  { minProperties: 1 },
);
export type UpdateRule = Static<typeof UpdateRuleBody>;

export const RuleQuery = StrictObject({
  ...PageQuerySchema.properties,
  type: Type.Optional(Enum(TYPES)),
  action: Type.Optional(Enum(ACTIONS)),
  origin: Type.Optional(Enum(ORIGINS)),
  policyId: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
  value: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'exact value (addresses are canonicalised first)' })),
  active: Type.Optional(Type.Boolean({ description: 'only rules that have (true) or have not (false) expired' })),
});
export type RuleFilter = Static<typeof RuleQuery>;

export const BULK_MAX = 10_000;

export const BulkBody = StrictObject({
  rules: Type.Array(BulkRule, { minItems: 1, maxItems: BULK_MAX }),
  force: Force,
});
export type Bulk = Static<typeof BulkBody>;

export const BulkResult = Type.Object({
  created: Type.Integer(),
  ids: Type.Array(Type.Integer(), { description: 'the new rules, in the order given' }),
});

export const CheckQuery = StrictObject({
  ip: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  ua: Type.Optional(Type.String({ maxLength: 2048 })),
  path: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  clientId: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
});
export type Check = Static<typeof CheckQuery>;

const CheckMatch = Type.Object({
  ruleId: Type.Integer(),
  type: Enum(TYPES),
  action: Enum(ACTIONS),
  value: Type.String(),
  severity: Enum(SEVERITIES),
  mode: Enum(MODES),
  policyId: Nullable(Type.Integer()),
  policyName: Nullable(Type.String()),
  expiresAt: Nullable(IsoDate()),
  why: Type.String(),
});

export const CheckResult = Type.Object({
  decision: Enum(['block', 'monitor', 'allow', 'none'] as const, { description: 'what the blocklist would do with this request' }),
  ruleId: Nullable(Type.Integer({ description: 'the deciding rule' })),
  explanation: Type.String(),
  /** What was matched: the canonical address and the normalised path. */
  input: Type.Object({ ip: Nullable(Type.String()), ua: Type.String(), path: Type.String(), clientId: Nullable(Type.Integer()) }),
  matches: Type.Array(CheckMatch, { description: 'every active rule that matches, the deciding one first' }),
});

export const IncidentSchema = Type.Object({
  id: Type.Integer(),
  kind: Type.String(),
  severity: Enum(SEVERITIES),
  sourceIp: Nullable(Type.String()),
  summary: Type.String(),
  details: Type.Record(Type.String(), Type.Unknown()),
  ruleId: Nullable(Type.Integer()),
  createdAt: IsoDate(),
});
export type Incident = Static<typeof IncidentSchema>;

export const IncidentQuery = StrictObject({
  ...PageQuerySchema.properties,
  kind: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  severity: Type.Optional(Enum(SEVERITIES)),
  sourceIp: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  since: Type.Optional(QueryTimestamp('only incidents at or after this time')),
});
export type IncidentFilter = Static<typeof IncidentQuery>;
