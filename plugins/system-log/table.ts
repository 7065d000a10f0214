import { bigint, index, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Significant events (audit, security, lifecycle) persisted for query; request access logs go
 * to stdout only. Every filter of GET /system/logs has an index ending in `id`, so a filtered,
 * keyset-paginated page is an index range scan.
 */
export const systemLogs = pgTable(
  'system_logs',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    level: text('level', { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] }).notNull(),
    source: text('source').notNull(),
    event: text('event').notNull(),
    message: text('message').notNull(),
    correlationId: text('correlation_id'),
    actor: text('actor'),
    instanceId: text('instance_id').notNull(),
    data: jsonb('data'),
  },
  (t) => [
    index('system_logs_occurred_idx').on(t.occurredAt, t.id),
    index('system_logs_level_idx').on(t.level, t.id),
    index('system_logs_source_idx').on(t.source, t.id),
    index('system_logs_event_idx').on(t.event, t.id),
    index('system_logs_correlation_idx').on(t.correlationId, t.id),
    index('system_logs_actor_idx').on(t.actor, t.id),
  ],
);
