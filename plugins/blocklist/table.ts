import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, jsonb, pgTable, text, timestamp, unique } from 'drizzle-orm/pg-core';

/**
 * TQ security policies: each groups rules, can be switched off, and runs in `enforce` (refuse)
 * or `monitor` (count and log what would have been refused) mode.
 */
export const securityPolicies = pgTable(
  'security_policies',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    name: text('name').notNull().unique('security_policies_name_key'),
    description: text('description').notNull().default(''),
    enabled: boolean('enabled').notNull().default(true),
    mode: text('mode', { enum: ['enforce', 'monitor'] }).notNull().default('enforce'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [check('security_policies_mode', sql`${t.mode} in ('enforce', 'monitor')`)],
);

/**
 * Blocklist (and allowlist) rules. One row per (policy, type, action, value): an automatic
 * block of an address already listed extends that row, and `offences` counts how often, which
 * is what repeat-offender TTLs grow with. Ending a rule sets `expires_at`; the row stays, so
 * the history survives for escalation and for the audit trail's references.
 */
export const blocklistRules = pgTable(
  'blocklist_rules',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    policyId: bigint('policy_id', { mode: 'number' }).references(() => securityPolicies.id, { onDelete: 'cascade' }),
    type: text('type', { enum: ['ip', 'cidr', 'user_agent', 'path', 'api_client'] }).notNull(),
    action: text('action', { enum: ['block', 'allow'] }).notNull().default('block'),
    /** Canonical: addresses and networks in RFC 5952 / dotted form, client ids as digits. */
    value: text('value').notNull(),
    severity: text('severity', { enum: ['low', 'medium', 'high', 'critical'] }).notNull().default('medium'),
    reason: text('reason').notNull().default(''),
    origin: text('origin', { enum: ['manual', 'honeypot', 'rate_limit', 'auth_failure', 'action', 'import'] }).notNull().default('manual'),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
    offences: integer('offences').notNull().default(1),
    lastOffenceAt: timestamp('last_offence_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    unique('blocklist_rules_policy_type_action_value_key').on(t.policyId, t.type, t.action, t.value).nullsNotDistinct(),
    check('blocklist_rules_type', sql`${t.type} in ('ip', 'cidr', 'user_agent', 'path', 'api_client')`),
    check('blocklist_rules_action', sql`${t.action} in ('block', 'allow')`),
    index('blocklist_rules_value_idx').on(t.value),
    index('blocklist_rules_type_id_idx').on(t.type, t.id),
    index('blocklist_rules_expires_at_idx').on(t.expiresAt),
  ],
);

/**
 * Per-minute counts of blocked, monitored, rate-limited and failed-authentication requests by
 * rule and address, written in batches by each instance: an attack adds a handful of rows a
 * minute, never one per request. The dashboard sums them by bucket.
 */
export const securityEventRollups = pgTable(
  'security_event_rollups',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    bucket: timestamp('bucket', { withTimezone: true, mode: 'date' }).notNull(),
    kind: text('kind', { enum: ['blocked', 'monitored', 'rate_limited', 'auth_failure'] }).notNull(),
    ruleId: bigint('rule_id', { mode: 'number' }),
    ruleType: text('rule_type'),
    policyId: bigint('policy_id', { mode: 'number' }),
    /** null when the per-interval address budget was spent (counted, not attributed). */
    address: text('address'),
    count: integer('count').notNull(),
  },
  (t) => [index('security_event_rollups_bucket_idx').on(t.bucket, t.kind)],
);

/** Security incidents: honeypot hits, canary keys, escalations; newest first in lists. */
export const securityIncidents = pgTable(
  'security_incidents',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    kind: text('kind').notNull(),
    severity: text('severity', { enum: ['low', 'medium', 'high', 'critical'] }).notNull(),
    sourceIp: text('source_ip'),
    summary: text('summary').notNull(),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
    ruleId: bigint('rule_id', { mode: 'number' }),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('security_incidents_created_at_idx').on(t.createdAt, t.id), index('security_incidents_kind_id_idx').on(t.kind, t.id)],
);
