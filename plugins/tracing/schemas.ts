import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, QueryTimestamp, StrictObject } from '../../src/schemas.js';

export const SpanStatusSchema = Type.Union([Type.Literal('unset'), Type.Literal('ok'), Type.Literal('error')]);
export const SpanKindSchema = Type.Union([Type.Literal('server'), Type.Literal('client'), Type.Literal('internal')]);

const TraceId = Type.String({ pattern: '^[0-9a-f]{32}$', description: 'W3C trace id: 32 lowercase hex digits' });
const SpanId = Type.String({ pattern: '^[0-9a-f]{16}$' });

export const TraceIdParams = StrictObject({ traceId: TraceId });

export const TraceListQuerySchema = StrictObject({
  ...PageQuerySchema.properties,
  minDurationMs: Type.Optional(Type.Number({ minimum: 0, maximum: 86_400_000, description: 'only traces whose root span took at least this long' })),
  status: Type.Optional(SpanStatusSchema),
  since: Type.Optional(QueryTimestamp('only traces started at or after this time')),
  until: Type.Optional(QueryTimestamp('only traces started at or before this time')),
});
export type TraceListQuery = Static<typeof TraceListQuerySchema>;

const spanFields = {
  traceId: TraceId,
  spanId: SpanId,
  parentSpanId: Type.Union([SpanId, Type.Null()]),
  name: Type.String(),
  kind: SpanKindSchema,
  startedAt: IsoDate(),
  durationMs: Type.Number(),
  status: SpanStatusSchema,
  statusCode: Type.Union([Type.Integer(), Type.Null()]),
  attributes: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  instanceId: Type.String(),
};

export const TraceSummarySchema = Type.Object(
  { ...spanFields, spanCount: Type.Integer({ description: 'spans recorded for the whole trace' }) },
  { description: 'The root span of a trace (where it entered this service)' },
);

export const SpanNodeSchema = Type.Recursive(
  (Node) => Type.Object({ ...spanFields, children: Type.Array(Node) }),
  { $id: 'TraceSpanNode', description: 'A span and the spans started under it' },
);

export const TraceTreeSchema = Type.Object({
  traceId: TraceId,
  spanCount: Type.Integer(),
  truncated: Type.Boolean({ description: 'true when the trace has more spans than one answer carries' }),
  roots: Type.Array(SpanNodeSchema, { description: 'spans whose parent is not in this trace (usually one: the entry span)' }),
});
