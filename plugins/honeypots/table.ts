import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, jsonb, pgTable, primaryKey, smallint, text, timestamp } from 'drizzle-orm/pg-core';

export const HONEYPOT_TYPES = ['path', 'canary_key'] as const;
export type HoneypotType = (typeof HONEYPOT_TYPES)[number];
export const HONEYPOT_SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;

/**
 * Honeypots: a decoy path (`/.env`, `/wp-login.php`) answered with a plausible response, or a
 * canary API key in the real `vhk_` format whose secret is kept only as a SHA-256 hash (like a
 * real key's). Any request to the path, or presenting the key, is a hit.
 */
export const honeypotInstances = pgTable(
  'honeypot_instances',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    name: text('name').notNull().unique('honeypot_instances_name_key'),
    type: text('type', { enum: HONEYPOT_TYPES }).notNull(),
    description: text('description').notNull().default(''),
    enabled: boolean('enabled').notNull().default(true),
    /** `path`: the normalised decoy path (lower case; a trailing `/*` matches everything below). */
    path: text('path').unique('honeypot_instances_path_key'),
    responseStatus: smallint('response_status').notNull().default(404),
    responseContentType: text('response_content_type').notNull().default('text/plain; charset=utf-8'),
    responseBody: text('response_body').notNull().default(''),
    /** `canary_key`: the key's public id and the SHA-256 (hex) of its secret. */
    keyId: text('key_id').unique('honeypot_instances_key_id_key'),
    secretHash: text('secret_hash'),
    autoBlock: boolean('auto_block').notNull().default(false),
    /** Lifetime of the first block rule; null: until removed. Escalates for repeat sources. */
    blockTtlSeconds: integer('block_ttl_seconds'),
    severity: text('severity', { enum: HONEYPOT_SEVERITIES }).notNull().default('high'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    check('honeypot_instances_shape', sql`(${t.type} = 'path' and ${t.path} is not null and ${t.keyId} is null) or (${t.type} = 'canary_key' and ${t.keyId} is not null and ${t.secretHash} is not null and ${t.path} is null)`),
  ],
);

/**
 * One row per hit, written in batches off the request path. No foreign key: a deleted honeypot's
 * telemetry stays for forensics until retention purges it.
 */
export const honeypotTelemetry = pgTable(
  'honeypot_telemetry',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    honeypotId: bigint('honeypot_id', { mode: 'number' }).notNull(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull(),
    sourceIp: text('source_ip').notNull(),
    userAgent: text('user_agent'),
    method: text('method').notNull(),
    path: text('path').notNull(),
    /** Request headers minus credentials (authorization, cookies, API keys, anything that looks like a secret), capped. */
    headers: jsonb('headers').$type<Record<string, string>>().notNull(),
    correlationId: text('correlation_id').notNull(),
  },
  (t) => [index('honeypot_telemetry_honeypot_id_idx').on(t.honeypotId, t.id), index('honeypot_telemetry_occurred_at_idx').on(t.occurredAt)],
);

/**
 * Hits per honeypot per minute (`period` 60) and per hour (`period` 3600), added to by the
 * telemetry writer in the same transaction as the rows. A window is summed from whole hours plus
 * the minutes of its partial first and last hours: at most 168 + 120 buckets per honeypot for
 * 7 days, exact to the minute, whatever the number of telemetry rows.
 */
export const honeypotHitRollups = pgTable(
  'honeypot_hit_rollups',
  {
    period: integer('period').notNull(),
    bucket: timestamp('bucket', { withTimezone: true, mode: 'date' }).notNull(),
    honeypotId: bigint('honeypot_id', { mode: 'number' }).notNull(),
    hits: bigint('hits', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ name: 'honeypot_hit_rollups_pkey', columns: [t.period, t.bucket, t.honeypotId] })],
);

/**
 * Hits per source address per hour (`period` 3600) and per day (`period` 86400), for the
 * dashboard's top offenders: each bucket's top sources come off the (period, bucket, hits,
 * source) index without touching the table, and only those candidates are summed over the
 * window (hours for windows up to two days, days beyond).
 */
export const honeypotSourceRollups = pgTable(
  'honeypot_source_rollups',
  {
    period: integer('period').notNull(),
    sourceIp: text('source_ip').notNull(),
    bucket: timestamp('bucket', { withTimezone: true, mode: 'date' }).notNull(),
    hits: bigint('hits', { mode: 'number' }).notNull(),
  },
  (t) => [
    primaryKey({ name: 'honeypot_source_rollups_pkey', columns: [t.period, t.sourceIp, t.bucket] }),
    index('honeypot_source_rollups_top_idx').on(t.period, t.bucket, t.hits.desc(), t.sourceIp),
  ],
);
