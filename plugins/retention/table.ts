import { sql } from 'drizzle-orm';
import { bigint, boolean, check, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * One retention policy per category (a purgeable table another pack or the kernel registered
 * through `app.retention.category`). The purge job fills the run columns.
 */
export const dataRetentionPolicies = pgTable(
  'data_retention_policies',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    category: text('category').notNull().unique('data_retention_policies_category_key'),
    retainDays: integer('retain_days').notNull(),
    /** The periodic purge skips a disabled policy; a manual run still works. */
    enabled: boolean('enabled').notNull().default(true),
    lastRunAt: timestamp('last_run_at', { withTimezone: true, mode: 'date' }),
    /** `complete`, `partial` (budget used up; the next run goes on) or `failed`. */
    lastRunStatus: text('last_run_status'),
    lastRunError: text('last_run_error'),
    lastRunPurged: bigint('last_run_purged', { mode: 'number' }),
    rowsPurgedTotal: bigint('rows_purged_total', { mode: 'number' }).notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [check('data_retention_policies_retain_days_check', sql`${t.retainDays} >= 1`)],
);
