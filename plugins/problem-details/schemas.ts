import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { QueryTimestamp, StrictObject } from '../../src/schemas.js';

export const ErrorEventSchema = Type.Object({
  id: Type.Integer(),
  occurredAt: Type.String({ format: 'date-time' }),
  kind: Type.String(),
  message: Type.String(),
  stack: Type.Union([Type.String(), Type.Null()]),
  method: Type.String(),
  route: Type.String(),
  url: Type.String(),
  statusCode: Type.Integer(),
  correlationId: Type.String(),
  instanceId: Type.String(),
});
export type ErrorEvent = Static<typeof ErrorEventSchema>;

export const ErrorEventQuerySchema = StrictObject({
  ...PageQuerySchema.properties,
  kind: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  route: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
  correlationId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  since: Type.Optional(QueryTimestamp('only events at or after this time')),
  until: Type.Optional(QueryTimestamp('only events at or before this time')),
});

export const ProblemTypeSchema = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  description: Type.String(),
});

export const ProblemKindParams = StrictObject({ kind: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z-]+$' }) });
