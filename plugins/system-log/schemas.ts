import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, QueryTimestamp, StrictObject } from '../../src/schemas.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LogLevelSchema = Type.Union([
  Type.Literal('trace'),
  Type.Literal('debug'),
  Type.Literal('info'),
  Type.Literal('warn'),
  Type.Literal('error'),
  Type.Literal('fatal'),
]);

export const FILTER_VALUES_MAX = 50;

const filters = {
  level: LogLevelSchema,
  source: Type.String({ minLength: 1, maxLength: 64 }),
  event: Type.String({ minLength: 1, maxLength: 128 }),
  correlationId: Type.String({ minLength: 1, maxLength: 128 }),
  actor: Type.String({ minLength: 1, maxLength: 200 }),
};

const range = {
  since: Type.Optional(QueryTimestamp('only entries at or after this time')),
  until: Type.Optional(QueryTimestamp('only entries at or before this time')),
};

const Many = <T extends TSchema>(item: T, what: string) =>
  Type.Optional(Type.Array(item, { minItems: 1, maxItems: FILTER_VALUES_MAX, description: `any of these ${what} (a list, even for one)` }));

export const SystemLogQuerySchema = StrictObject({
  ...PageQuerySchema.properties,
  level: Type.Optional(filters.level),
  source: Type.Optional(filters.source),
  event: Type.Optional(filters.event),
  correlationId: Type.Optional(filters.correlationId),
  actor: Type.Optional(filters.actor),
  ...range,
});
export type SystemLogQuery = Static<typeof SystemLogQuerySchema>;

/** The body of POST /system/logs/query: the GET filters, each taking up to 50 values (OR within a filter, AND across filters). */
export const SystemLogSearchSchema = StrictObject({
  ...PageQuerySchema.properties,
  level: Many(filters.level, 'levels'),
  source: Many(filters.source, 'sources'),
  event: Many(filters.event, 'events'),
  correlationId: Many(filters.correlationId, 'correlation ids'),
  actor: Many(filters.actor, 'actors'),
  ...range,
});
export type SystemLogSearch = Static<typeof SystemLogSearchSchema>;

export const SystemLogSchema = Type.Object({
  id: Type.Integer(),
  occurredAt: IsoDate(),
  level: LogLevelSchema,
  source: Type.String(),
  event: Type.String(),
  message: Type.String(),
  correlationId: Type.Union([Type.String(), Type.Null()]),
  actor: Type.Union([Type.String(), Type.Null()]),
  instanceId: Type.String(),
  data: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], { description: 'event details, secrets redacted' }),
});
export type SystemLog = Static<typeof SystemLogSchema>;
