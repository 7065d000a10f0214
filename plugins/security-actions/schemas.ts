import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, Nullable, StrictObject } from '../../src/schemas.js';

// Bodies and queries are StrictObject (unknown fields: 400 naming the field); responses plain objects.

export const ACTION_TYPES = ['block_ip', 'unblock_ip', 'revoke_api_key', 'suspend_client', 'set_maintenance_mode', 'disable_flag'] as const;
export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export const STATUSES = ['pending', 'approved', 'executing', 'executed', 'failed', 'rejected', 'cancelled', 'expired'] as const;

export type ActionType = (typeof ACTION_TYPES)[number];
export type Severity = (typeof SEVERITIES)[number];
export type ActionStatus = (typeof STATUSES)[number];

const Enum = <const T extends string>(values: readonly T[], description?: string) => Type.Union(values.map((v) => Type.Literal(v)), { description });

const Address = Type.String({ minLength: 2, maxLength: 64, description: 'an IPv4 or IPv6 address, or a CIDR (`10.0.0.0/8`, `2001:db8::/32`)' });

/**
 * Each action type's params. Checked in the service after the body schema (which takes any
 * small object), so a wrong field is reported at `#/params/<field>` for the type given, not as
 * a mismatch against every type at once.
 */
export const PARAMS_SCHEMAS = {
  block_ip: StrictObject({
    address: Address,
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 31_536_000, description: 'how long the block lasts; without it, until removed' })),
  }),
  unblock_ip: StrictObject({ address: Address }),
  revoke_api_key: StrictObject({ keyId: Type.String({ minLength: 12, maxLength: 12, pattern: '^[0-9A-Za-z]{12}$', description: 'the public key id (`vhk_<keyId>_...`)' }) }),
  suspend_client: StrictObject({ clientId: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) }),
  set_maintenance_mode: StrictObject({
    mode: Enum(['normal', 'read_only', 'maintenance']),
    until: Type.Optional(Type.String({ minLength: 10, maxLength: 40, description: 'ISO 8601 date-time; not with `normal`; must still lie ahead when the action executes' })),
  }),
  disable_flag: StrictObject({ flagKey: Type.String({ minLength: 1, maxLength: 100, description: 'the flag key, as in `/system/flags/{key}`' }) }),
} as const;

export type ActionParams = { [K in ActionType]: Static<(typeof PARAMS_SCHEMAS)[K]> };

export const ActorSchema = Type.Object({ type: Type.String(), id: Type.String(), keyId: Nullable(Type.String()) });

export const DecisionSchema = Type.Object({
  approver: ActorSchema,
  decision: Enum(['approve', 'reject']),
  comment: Nullable(Type.String()),
  createdAt: IsoDate(),
});
export type Decision = Static<typeof DecisionSchema>;

export const SecurityActionSchema = Type.Object({
  id: Type.Integer(),
  type: Enum(ACTION_TYPES),
  params: Type.Record(Type.String(), Type.Unknown()),
  reason: Type.String(),
  severity: Enum(SEVERITIES),
  status: Enum(STATUSES),
  requiredApprovals: Type.Integer(),
  approvals: Type.Integer({ description: 'approve decisions so far' }),
  requestedBy: ActorSchema,
  decisions: Type.Array(DecisionSchema, { description: 'approvals and rejections, oldest first' }),
  expiresAt: IsoDate('a pending action still pending then becomes `expired`'),
  result: Nullable(Type.Object({}, { additionalProperties: true, description: 'what the execution did (set when `executed`)' })),
  error: Nullable(Type.String({ description: 'why the execution failed, sanitised (set when `failed`)' })),
  decidedAt: Nullable(IsoDate('when it left `pending`')),
  executionStartedAt: Nullable(IsoDate()),
  finishedAt: Nullable(IsoDate('when it reached a final state')),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type SecurityAction = Static<typeof SecurityActionSchema>;

export const CreateActionBody = StrictObject({
  type: Enum(ACTION_TYPES),
  params: Type.Object({}, { additionalProperties: true, maxProperties: 8, description: "per type: block_ip {address, ttlSeconds?}, unblock_ip {address}, revoke_api_key {keyId}, suspend_client {clientId}, set_maintenance_mode {mode, until?}, disable_flag {flagKey}" }),
  reason: Type.String({ minLength: 3, maxLength: 1000 }),
  severity: Type.Optional(Enum(SEVERITIES, 'default `medium`')),
  requiredApprovals: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: 'default 1 for low and medium, 2 for high and critical; never fewer than that default' })),
  expiresAt: Type.Optional(Type.String({ format: 'date-time', maxLength: 40, description: 'default 24 hours from now; at most 30 days ahead' })),
});
export type CreateAction = Static<typeof CreateActionBody>;

export const DecideBody = StrictObject({
  decision: Enum(['approve', 'reject']),
  comment: Type.Optional(Type.String({ maxLength: 1000 })),
});
export type Decide = Static<typeof DecideBody>;

export const CancelBody = StrictObject({ comment: Type.Optional(Type.String({ maxLength: 1000 })) });

export const ActionQuery = StrictObject({
  ...PageQuerySchema.properties,
  status: Type.Optional(Enum(STATUSES)),
  type: Type.Optional(Enum(ACTION_TYPES)),
  severity: Type.Optional(Enum(SEVERITIES)),
  requestedBy: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'the requester actor id (an API client id)' })),
});
export type ActionFilter = Static<typeof ActionQuery>;

/** What the security dashboard (TT) lists for pending actions. */
export interface PendingAction {
  id: number;
  type: ActionType;
  severity: Severity;
  reason: string;
  requestedBy: { type: string; id: string; keyId: string | null };
  approvals: number;
  requiredApprovals: number;
  createdAt: string;
  expiresAt: string;
}
