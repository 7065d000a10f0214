import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * The mode as operators set it, one row per change (the newest row is the current setting, the
 * others are its history). `source` says who wrote the row: an operator (`manual`) or the sweep
 * job recording that an `until` passed (`expired`). Scheduled windows are a separate table; the
 * effective mode combines both (see effective.ts).
 */
export const maintenanceState = pgTable(
  'maintenance_state',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    mode: text('mode').notNull(),
    reason: text('reason').notNull(),
    source: text('source').notNull().default('manual'),
    actorType: text('actor_type').notNull(),
    actorId: text('actor_id'),
    keyId: text('key_id'),
    since: timestamp('since', { withTimezone: true, mode: 'date' }).notNull(),
    until: timestamp('until', { withTimezone: true, mode: 'date' }),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [check('maintenance_state_mode_check', sql`${t.mode} in ('normal', 'read_only', 'maintenance')`)],
);

/**
 * Scheduled windows. `activated_at`/`completed_at` are stamped by the sweep job when it records
 * (audit entry, change event) that a window began or ended; the switch itself does not wait for
 * it: every instance derives the mode from `starts_at`/`ends_at` in memory.
 */
export const maintenanceWindows = pgTable(
  'maintenance_windows',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    mode: text('mode').notNull(),
    reason: text('reason').notNull(),
    startsAt: timestamp('starts_at', { withTimezone: true, mode: 'date' }).notNull(),
    endsAt: timestamp('ends_at', { withTimezone: true, mode: 'date' }).notNull(),
    createdBy: text('created_by'),
    activatedAt: timestamp('activated_at', { withTimezone: true, mode: 'date' }),
    completedAt: timestamp('completed_at', { withTimezone: true, mode: 'date' }),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    // The state cache loads the windows that have not ended yet; overlap checks scan by time.
    index('maintenance_windows_ends_idx').on(t.endsAt, t.id),
    index('maintenance_windows_starts_idx').on(t.startsAt, t.id),
    check('maintenance_windows_mode_check', sql`${t.mode} in ('read_only', 'maintenance')`),
    check('maintenance_windows_span_check', sql`${t.endsAt} > ${t.startsAt}`),
  ],
);

/** The change freeze, one row per switch (the newest row is the current setting). */
export const maintenanceFreeze = pgTable('maintenance_freeze', {
  id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  enabled: boolean('enabled').notNull(),
  reason: text('reason').notNull(),
  source: text('source').notNull().default('manual'),
  actorType: text('actor_type').notNull(),
  actorId: text('actor_id'),
  keyId: text('key_id'),
  since: timestamp('since', { withTimezone: true, mode: 'date' }).notNull(),
  until: timestamp('until', { withTimezone: true, mode: 'date' }),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});
