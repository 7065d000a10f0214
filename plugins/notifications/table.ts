import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

export const CHANNEL_TYPES = ['webhook', 'email', 'sms'] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

/**
 * Where notifications go. `config` holds the target and the *names* of the environment variables
 * that carry its secrets (`secretEnvs`, `tokenEnv`, `passwordEnv`): never a secret itself.
 */
export const notificationChannels = pgTable(
  'notification_channels',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    name: text('name').notNull().unique('notification_channels_name_key'),
    type: text('type', { enum: CHANNEL_TYPES }).notNull(),
    /** Event types this channel receives: exact (`smoke.failed`), a prefix (`maintenance.*`) or `*`. */
    events: jsonb('events').$type<string[]>().notNull(),
    config: jsonb('config').$type<Record<string, unknown>>().notNull(),
    enabled: boolean('enabled').notNull().default(true),
    /** Why the dispatcher switched it off (a 410 from the target); cleared when re-enabled. */
    disabledReason: text('disabled_reason'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('notification_channels_type_idx').on(t.type, t.id), check('notification_channels_type_check', sql`${t.type} in ('webhook', 'email', 'sms')`)],
);

export const OUTBOX_STATUSES = ['pending', 'sending', 'delivered', 'dead'] as const;
export type OutboxStatus = (typeof OUTBOX_STATUSES)[number];

/**
 * The transactional outbox: one row per (event, channel), written in the transaction of the
 * change that caused it, delivered by the dispatcher. `sending` rows carry a lease
 * (`locked_until`): a dispatcher that dies mid-delivery leaves them to be claimed again.
 */
export const notificationOutbox = pgTable(
  'notification_outbox',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    /** Standard Webhooks `webhook-id`: the same on every attempt, so receivers can deduplicate. */
    messageId: text('message_id').notNull().unique('notification_outbox_message_id_key'),
    /** Shared by the rows one `enqueue` wrote (one per subscribed channel). */
    eventId: text('event_id').notNull(),
    channelId: bigint('channel_id', { mode: 'number' }).references(() => notificationChannels.id, { onDelete: 'set null' }),
    eventType: text('event_type').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    status: text('status', { enum: OUTBOX_STATUSES }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull(),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lockedBy: text('locked_by'),
    lockedUntil: timestamp('locked_until', { withTimezone: true, mode: 'date' }),
    lastError: text('last_error'),
    lastStatusCode: integer('last_status_code'),
    /** W3C traceparent of the change that enqueued it: deliveries join that trace. */
    traceparent: text('traceparent'),
    deliveredAt: timestamp('delivered_at', { withTimezone: true, mode: 'date' }),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    // The dispatcher's claim: due pending rows, and sending rows whose lease ran out.
    index('notification_outbox_due_idx').on(t.status, t.nextAttemptAt),
    index('notification_outbox_lease_idx').on(t.status, t.lockedUntil),
    index('notification_outbox_channel_idx').on(t.channelId, t.id),
    index('notification_outbox_event_type_idx').on(t.eventType, t.id),
    index('notification_outbox_event_idx').on(t.eventId),
    index('notification_outbox_status_idx').on(t.status, t.id),
    index('notification_outbox_created_idx').on(t.createdAt, t.id),
    check('notification_outbox_status_check', sql`${t.status} in ('pending', 'sending', 'delivered', 'dead')`),
  ],
);
