import { sql } from 'drizzle-orm';
import { bigint, check, index, integer, pgTable, text, timestamp, varchar } from 'drizzle-orm/pg-core';

/** Who calls the API: a team, a service or a person, holding the scopes its keys may carry. */
export const apiClients = pgTable(
  'api_clients',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    name: text('name').notNull().unique('api_clients_name_key'),
    owner: text('owner').notNull(),
    description: text('description').notNull().default(''),
    scopes: text('scopes').array().notNull(),
    status: varchar('status', { length: 16 }).notNull().default('active'),
    rateLimitMax: integer('rate_limit_max'),
    rateLimitWindowSeconds: integer('rate_limit_window_seconds'),
    dailyQuota: integer('daily_quota'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    check('api_clients_status_check', sql`${t.status} in ('active', 'suspended')`),
    index('api_clients_status_id_idx').on(t.status, t.id),
  ],
);

/**
 * One row per key. The secret is never stored: only SHA-256 of it (the secret has ~190 bits of
 * entropy, so a slow password hash would add latency without adding safety).
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    clientId: bigint('client_id', { mode: 'number' })
      .notNull()
      .references(() => apiClients.id, { onDelete: 'cascade' }),
    keyId: varchar('key_id', { length: 12 }).notNull().unique('api_keys_key_id_key'),
    secretHash: varchar('secret_hash', { length: 64 }).notNull(),
    name: text('name').notNull(),
    scopes: text('scopes').array().notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
    revokedReason: text('revoked_reason'),
    /** Set on a key replaced by rotation: the key that replaced it. */
    replacedBy: varchar('replaced_by', { length: 12 }),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('api_keys_client_id_id_idx').on(t.clientId, t.id)],
);
