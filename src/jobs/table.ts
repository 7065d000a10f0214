import { bigint, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** Queued work: claimed with FOR UPDATE SKIP LOCKED, leased, retried with backoff. */
export const jobQueue = pgTable(
  'job_queue',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    name: text('name').notNull(),
    payload: jsonb('payload').notNull().default({}),
    status: text('status', { enum: ['queued', 'running', 'succeeded', 'failed', 'dead'] }).notNull().default('queued'),
    attempts: integer('attempts').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull().default(5),
    runAt: timestamp('run_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lockedBy: text('locked_by'),
    lockedUntil: timestamp('locked_until', { withTimezone: true, mode: 'date' }),
    lastError: text('last_error'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
  },
  // finished_at: the retention purge of finished jobs walks it oldest first.
  (t) => [index('job_queue_due_idx').on(t.status, t.runAt), index('job_queue_name_idx').on(t.name, t.id), index('job_queue_finished_idx').on(t.finishedAt, t.id)],
);

/** Periodic work: one row per job; `next_run_at` makes a period run once across all instances. */
export const jobSchedules = pgTable('job_schedules', {
  name: text('name').primaryKey(),
  intervalMs: integer('interval_ms').notNull(),
  nextRunAt: timestamp('next_run_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  lastRunAt: timestamp('last_run_at', { withTimezone: true, mode: 'date' }),
  lastStatus: text('last_status'),
  lastError: text('last_error'),
  lastDurationMs: integer('last_duration_ms'),
  lastRunBy: text('last_run_by'),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});
