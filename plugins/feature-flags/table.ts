import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, jsonb, numeric, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import type { Prerequisite, Rule, Variant } from './schemas.js';

/**
 * UA feature flags. The whole table is the hot-path state: every instance holds it compiled in
 * memory (state-cache entry `feature-flags`) and evaluates from there.
 */
export const featureFlags = pgTable(
  'feature_flags',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    key: text('key').notNull().unique('feature_flags_key_key'),
    description: text('description').notNull().default(''),
    type: text('type', { enum: ['release', 'experiment', 'operational', 'kill-switch'] }).notNull().default('release'),
    enabled: boolean('enabled').notNull().default(false),
    // Three decimals: buckets are thousandths of a percentage point.
    rolloutPercentage: numeric('rollout_percentage', { precision: 6, scale: 3, mode: 'number' }).notNull().default(0),
    variants: jsonb('variants').$type<Variant[]>().notNull().default([]),
    rules: jsonb('rules').$type<Rule[]>().notNull().default([]),
    prerequisites: jsonb('prerequisites').$type<Prerequisite[]>().notNull().default([]),
    defaultValue: jsonb('default_value').$type<unknown>(),
    offValue: jsonb('off_value').$type<unknown>(),
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    check('feature_flags_rollout_range', sql`${t.rolloutPercentage} >= 0 and ${t.rolloutPercentage} <= 100`),
    index('feature_flags_type_id').on(t.type, t.id),
    index('feature_flags_enabled_id').on(t.enabled, t.id),
    // `key LIKE 'prefix%'` (the list's keyPrefix filter) can use a pattern-ops index whatever the collation.
    index('feature_flags_key_pattern').using('btree', t.key.op('text_pattern_ops')),
  ],
);
