import { bigint, boolean, doublePrecision, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** One row per sampled span (W3C Trace Context ids as lowercase hex). */
export const traceSpans = pgTable(
  'trace_spans',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    traceId: text('trace_id').notNull(),
    spanId: text('span_id').notNull(),
    parentSpanId: text('parent_span_id'),
    /** First span of the trace in this service (no parent, or a parent from another service). */
    isRoot: boolean('is_root').notNull().default(false),
    name: text('name').notNull(),
    kind: text('kind', { enum: ['server', 'client', 'internal'] }).notNull().default('server'),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }).notNull(),
    durationMs: doublePrecision('duration_ms').notNull(),
    status: text('status', { enum: ['unset', 'ok', 'error'] }).notNull().default('unset'),
    statusCode: integer('status_code'),
    attributes: jsonb('attributes'),
    instanceId: text('instance_id').notNull(),
  },
  (t) => [
    index('trace_spans_trace_idx').on(t.traceId),
    index('trace_spans_root_idx').on(t.isRoot, t.id),
    index('trace_spans_started_idx').on(t.startedAt, t.id),
  ],
);
