import { bigint, index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** Every 5xx the kernel answered: what happened, where, and the correlation id the client saw. */
export const errorEvents = pgTable(
  'error_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    kind: text('kind').notNull(),
    message: text('message').notNull(),
    stack: text('stack'),
    method: text('method').notNull(),
    route: text('route').notNull(),
    url: text('url').notNull(),
    statusCode: integer('status_code').notNull(),
    correlationId: text('correlation_id').notNull(),
    instanceId: text('instance_id').notNull(),
  },
  (t) => [
    index('error_events_occurred_idx').on(t.occurredAt, t.id),
    index('error_events_kind_idx').on(t.kind, t.id),
    index('error_events_route_idx').on(t.route, t.id),
    index('error_events_correlation_idx').on(t.correlationId),
  ],
);
