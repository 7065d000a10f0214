import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';

/**
 * Keys are dotted lowercase names with at least two segments (`<area>.<name>`, e.g.
 * `exports.max_rows`). Requiring a dot keeps every key apart from the fixed path
 * `/system/config/effective`, so entries live at `/system/config/<key>` without a collision.
 */
export const KEY_PATTERN = '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$';
export const KEY_MAX_LENGTH = 128;
/** `default` is the base environment; named environments override it. */
export const ENVIRONMENT_PATTERN = '^[a-z][a-z0-9-]{0,31}$';
export const DEFAULT_ENVIRONMENT = 'default';
/** Serialized JSON size of one value. */
export const VALUE_MAX_BYTES = 64 * 1024;
/** Nesting depth of one value (objects and arrays). */
export const VALUE_MAX_DEPTH = 32;

export const CONFIG_TYPES = ['string', 'number', 'boolean', 'json'] as const;
export type ConfigType = (typeof CONFIG_TYPES)[number];

export const ConfigKey = Type.String({
  minLength: 3,
  maxLength: KEY_MAX_LENGTH,
  pattern: KEY_PATTERN,
  description: 'dotted lowercase name with at least two segments, e.g. `exports.max_rows`',
});
const environmentSchema = (options: { default?: string } = {}) =>
  Type.String({ minLength: 1, maxLength: 32, pattern: ENVIRONMENT_PATTERN, description: '`default` (the base) or a named environment such as `production`', ...options });
export const Environment = environmentSchema();
const EnvironmentQuery = Type.Optional(environmentSchema({ default: DEFAULT_ENVIRONMENT }));
const configTypeSchema = (description = '`json` holds an object or an array') => Type.Union(CONFIG_TYPES.map((t) => Type.Literal(t)), { description });
const ConfigTypeSchema = configTypeSchema();
const Reason = Type.String({ minLength: 1, maxLength: 500, description: 'why; kept in the history and the audit trail' });
const version = (description: string) => Type.Integer({ minimum: 1, maximum: 2_147_483_647, description });
const ExpectedVersion = Type.Integer({
  minimum: 0,
  maximum: 2_147_483_647,
  description: 'optimistic concurrency: the version the caller last read (0: the entry must not exist); 409 when it differs',
});
const KeyPrefix = Type.String({ minLength: 1, maxLength: KEY_MAX_LENGTH, pattern: '^[a-z0-9_.]+$', description: 'only keys starting with this' });

export const ConfigEntrySchema = Type.Object({
  key: Type.String(),
  environment: Type.String(),
  value: Type.Unknown(),
  type: ConfigTypeSchema,
  description: Type.String(),
  version: Type.Integer(),
  updatedBy: Type.String(),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type ConfigEntry = Static<typeof ConfigEntrySchema>;

export const HISTORY_OPERATIONS = ['create', 'update', 'delete', 'rollback'] as const;
export type HistoryOperation = (typeof HISTORY_OPERATIONS)[number];

export const ConfigHistoryItemSchema = Type.Object({
  id: Type.Integer(),
  key: Type.String(),
  environment: Type.String(),
  version: Type.Integer(),
  operation: Type.Union(HISTORY_OPERATIONS.map((o) => Type.Literal(o))),
  value: Type.Optional(Type.Unknown({ description: 'absent for a delete' })),
  type: Type.Union([ConfigTypeSchema, Type.Null()]),
  description: Type.Union([Type.String(), Type.Null()]),
  restoredVersion: Type.Union([Type.Integer(), Type.Null()], { description: 'for a rollback: the version it restored' }),
  actor: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  correlationId: Type.Union([Type.String(), Type.Null()]),
  createdAt: IsoDate(),
});
export type ConfigHistoryItem = Static<typeof ConfigHistoryItemSchema>;

export const EffectiveItemSchema = Type.Object({
  key: Type.String(),
  value: Type.Unknown(),
  type: ConfigTypeSchema,
  description: Type.String(),
  /** Where the value comes from: `default` or the requested environment. */
  source: Type.String(),
  version: Type.Integer(),
  updatedAt: IsoDate(),
});
export type EffectiveItem = Static<typeof EffectiveItemSchema>;

export const EffectivePageSchema = Type.Object({
  environment: Type.String(),
  items: Type.Array(EffectiveItemSchema),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});
export type EffectivePage = Static<typeof EffectivePageSchema>;

export const KeyParams = StrictObject({ key: ConfigKey });

export const ConfigListQuery = StrictObject({
  ...PageQuerySchema.properties,
  environment: Type.Optional(Environment),
  prefix: Type.Optional(KeyPrefix),
});
export type ConfigListFilter = Static<typeof ConfigListQuery>;

export const EffectiveQuery = StrictObject({
  ...PageQuerySchema.properties,
  environment: EnvironmentQuery,
  prefix: Type.Optional(KeyPrefix),
});
export type EffectiveFilter = Static<typeof EffectiveQuery>;

export const EntryQuery = StrictObject({ environment: EnvironmentQuery });

export const DeleteQuery = StrictObject({
  environment: EnvironmentQuery,
  reason: Type.Optional(Reason),
  expectedVersion: Type.Optional(version('optimistic concurrency: 409 unless the entry is at this version')),
});

export const HistoryQuery = StrictObject({
  ...PageQuerySchema.properties,
  environment: Type.Optional(Environment),
});
export type HistoryFilter = Static<typeof HistoryQuery>;

export const PutEntryBody = StrictObject({
  value: Type.Unknown({ description: 'JSON value matching `type`; at most 64 KiB serialized' }),
  type: Type.Optional(configTypeSchema('default: the current type of the entry, else inferred from the value; `json` holds an object or an array')),
  description: Type.Optional(Type.String({ maxLength: 1000, description: 'default: the current description, else empty' })),
  reason: Type.Optional(Reason),
  expectedVersion: Type.Optional(ExpectedVersion),
});
export type PutEntry = Static<typeof PutEntryBody>;

/** `POST /system/config` (the seed's create): the key and environment in the body. */
export const CreateEntryBody = StrictObject({
  key: ConfigKey,
  environment: EnvironmentQuery,
  value: PutEntryBody.properties.value,
  type: Type.Optional(configTypeSchema('default: inferred from the value; `json` holds an object or an array')),
  description: Type.Optional(Type.String({ maxLength: 1000, description: 'default: empty' })),
  reason: Type.Optional(Reason),
});
export type CreateEntry = Static<typeof CreateEntryBody>;

export const RollbackBody = StrictObject({
  environment: EnvironmentQuery,
  version: version('the version whose value, type and description become the new version'),
  reason: Type.Optional(Reason),
  expectedVersion: Type.Optional(ExpectedVersion),
});
export type Rollback = Static<typeof RollbackBody>;
