import { bigint, customType, index, integer, pgTable, text, timestamp, unique } from 'drizzle-orm/pg-core';

/**
 * A jsonb column that hands back exactly what the driver parsed. drizzle's own `jsonb` parses a
 * string result once more, so the JSON string value "42" would come back as the number 42 (both
 * postgres.js and PGlite already parse jsonb). Config values are often such strings.
 */
const jsonValue = customType<{ data: unknown; driverData: unknown }>({
  dataType: () => 'jsonb',
  toDriver: (value) => JSON.stringify(value),
  fromDriver: (value) => value,
});

/**
 * Configuration entries: one row per (key, environment). `environment = 'default'` holds the
 * base value; a named environment (`production`, `staging`) overrides it. `version` counts the
 * entry's changes and never repeats for a (key, environment), even across a delete and a
 * re-create, so a version number names one value in the history for good.
 */
export const systemConfig = pgTable(
  'system_config',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    key: text('key').notNull(),
    environment: text('environment').notNull(),
    value: jsonValue('value').notNull(),
    type: text('type').notNull(),
    description: text('description').notNull().default(''),
    version: integer('version').notNull(),
    updatedBy: text('updated_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    // Also the keyset index of the list (ordered by key, environment).
    unique('system_config_key_environment_key').on(t.key, t.environment),
    index('system_config_environment_key_idx').on(t.environment, t.key),
  ],
);

/**
 * Every version of every entry, deletes included (`operation = 'delete'`, no value). Written in
 * the transaction of the change; never updated. The unique version per (key, environment) is
 * what makes two concurrent writers of one entry a 409 rather than two "version 3"s.
 */
export const systemConfigHistory = pgTable(
  'system_config_history',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    key: text('key').notNull(),
    environment: text('environment').notNull(),
    version: integer('version').notNull(),
    /** `create`, `update`, `delete` or `rollback`. */
    operation: text('operation').notNull(),
    value: jsonValue('value'),
    type: text('type'),
    description: text('description'),
    /** For a rollback: the version whose value it restored. */
    restoredVersion: integer('restored_version'),
    actor: text('actor').notNull(),
    reason: text('reason'),
    correlationId: text('correlation_id'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    unique('system_config_history_version_key').on(t.key, t.environment, t.version),
    index('system_config_history_key_id_idx').on(t.key, t.id),
    index('system_config_history_key_environment_id_idx').on(t.key, t.environment, t.id),
  ],
);
