import { bigint, index, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** Periodic snapshot of key figures per instance, for history beyond Prometheus' retention. */
export const metricsSnapshots = pgTable(
  'metrics_snapshots',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    takenAt: timestamp('taken_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    instanceId: text('instance_id').notNull(),
    figures: jsonb('figures').notNull(),
  },
  (t) => [index('metrics_snapshots_taken_idx').on(t.takenAt, t.id), index('metrics_snapshots_instance_idx').on(t.instanceId, t.id)],
);
