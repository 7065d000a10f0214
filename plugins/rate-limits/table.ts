import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, pgTable, text, timestamp, unique } from 'drizzle-orm/pg-core';

/**
 * Rate-limit rules. `route` is '' for every scope but `route` (a column that is never null keeps
 * the (scope, match, route) unique constraint simple: NULLs would all be distinct).
 */
export const rateLimits = pgTable(
  'rate_limits',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    scope: text('scope').notNull(),
    match: text('match').notNull().default('*'),
    route: text('route').notNull().default(''),
    max: integer('max').notNull(),
    windowSeconds: integer('window_seconds').notNull(),
    enabled: boolean('enabled').notNull().default(true),
    description: text('description').notNull().default(''),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    unique('rate_limits_rule_key').on(t.scope, t.match, t.route),
    index('rate_limits_scope_idx').on(t.scope, t.id),
    check('rate_limits_scope_check', sql`${t.scope} in ('global', 'ip', 'api_key', 'client', 'route')`),
    check('rate_limits_max_check', sql`${t.max} > 0`),
    check('rate_limits_window_check', sql`${t.windowSeconds} > 0`),
  ],
);
