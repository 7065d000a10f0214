import { randomBytes } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { and, asc, desc, eq, inArray, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import type { Db, DbOrTx } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique, ProblemError, type ProblemErrorItem } from '../../src/problem.js';
import { isIP } from 'node:net';
import { refuseLiteral } from './outbound.js';
import type { SecretSource } from './senders.js';
import {
  EmailConfigSchema,
  SmsConfigSchema,
  WebhookConfigSchema,
  type Channel,
  type ChannelConfig,
  type ChannelFilter,
  type CreateChannel,
  type OutboxFilter,
  type OutboxItem,
  type UpdateChannel,
} from './schemas.js';
import { notificationChannels, notificationOutbox, type ChannelType } from './table.js';

type ChannelRow = typeof notificationChannels.$inferSelect;
export type OutboxRow = typeof notificationOutbox.$inferSelect;

/**
 * Delays before each retry, after attempt 1, 2, ... (Svix's schedule: immediately, 5 s, 5 min,
 * 30 min, 2 h, 5 h, 10 h, 10 h); a row is `dead` after its last attempt.
 * https://docs.svix.com/retries
 */
export const RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000] as const;
export const MAX_ATTEMPTS = RETRY_SCHEDULE_MS.length + 1;
/** ±20 %, so receivers recovering from an outage are not hit by every retry in the same second. */
export const JITTER = 0.2;

/** The delay before the attempt after `attempt` (1-based), with jitter; `random` in [0, 1). */
export function retryDelayMs(attempt: number, random: () => number = Math.random): number {
  const base = RETRY_SCHEDULE_MS[Math.min(attempt, RETRY_SCHEDULE_MS.length) - 1] ?? RETRY_SCHEDULE_MS[0];
  return Math.round(base * (1 - JITTER + 2 * JITTER * random()));
}

/** True when a channel subscribed with `patterns` takes events of `type`. */
export function subscribes(patterns: readonly string[], type: string): boolean {
  return patterns.some((p) => p === '*' || p === type || (p.endsWith('.*') && type.startsWith(p.slice(0, -1))));
}

const newId = (prefix: string) => `${prefix}_${randomBytes(15).toString('base64url')}`;

const toChannel = (row: ChannelRow): Channel => ({
  id: row.id,
  name: row.name,
  type: row.type,
  events: row.events,
  config: row.config,
  enabled: row.enabled,
  disabledReason: row.disabledReason,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

export const toOutboxItem = (row: OutboxRow): OutboxItem => ({
  id: row.id,
  messageId: row.messageId,
  eventId: row.eventId,
  channelId: row.channelId,
  eventType: row.eventType,
  payload: row.payload,
  status: row.status,
  attempts: row.attempts,
  maxAttempts: row.maxAttempts,
  nextAttemptAt: row.nextAttemptAt.toISOString(),
  lastError: row.lastError,
  lastStatusCode: row.lastStatusCode,
  deliveredAt: row.deliveredAt ? row.deliveredAt.toISOString() : null,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

const CONFIG_SCHEMAS = { webhook: WebhookConfigSchema, email: EmailConfigSchema, sms: SmsConfigSchema } as const;

const invalid = (errors: ProblemErrorItem[]): ProblemError =>
  new ProblemError('validation-failed', { detail: errors.map((e) => `${e.pointer}: ${e.message}`).join('; '), errors });

/**
 * The config checked against the schema of the channel's type (the body schema accepts any of
 * the three), URLs parsed, and a target that is an IP literal in a refused range turned away
 * now rather than at every delivery.
 */
export function checkConfig(type: ChannelType, config: ChannelConfig, allowPrivate: boolean): ChannelConfig {
  const schema = CONFIG_SCHEMAS[type];
  const first = Value.Errors(schema, config).First();
  if (first) throw invalid([{ in: 'body', pointer: `#/config${first.path}`, message: `${first.message} (for a ${type} channel)` }]);
  if ('url' in config) {
    let url: URL;
    try {
      url = new URL(config.url);
    } catch {
      throw invalid([{ in: 'body', pointer: '#/config/url', message: 'is not a valid URL' }]);
    }
    if (url.username || url.password) throw invalid([{ in: 'body', pointer: '#/config/url', message: 'must not carry credentials (put them in a secret variable)' }]);
    const refused = refuseLiteral(url, allowPrivate);
    if (refused) throw new ProblemError('unprocessable', { detail: refused.message });
  }
  if ('host' in config) {
    // The SMTP relay gets the channel's credentials: the same guard as HTTP targets. Parsed as an
    // http host so every spelling of an address (`2130706433`, `0x7f.1`) reaches the check normalised.
    let url: URL;
    try {
      url = new URL(`http://${isIP(config.host) === 6 ? `[${config.host}]` : config.host}/`);
    } catch {
      throw invalid([{ in: 'body', pointer: '#/config/host', message: 'is not a valid host name or address' }]);
    }
    const refused = refuseLiteral(url, allowPrivate);
    if (refused) throw new ProblemError('unprocessable', { detail: refused.message });
  }
  if ('passwordEnv' in config && config.passwordEnv && !config.usernameEnv) throw invalid([{ in: 'body', pointer: '#/config/usernameEnv', message: 'is required with passwordEnv' }]);
  return config;
}

/** The secret variables a config names, by field, in a stable form (for comparing two configs). */
export function secretRefs(config: Record<string, unknown>): Record<string, string> {
  const refs: Record<string, string> = {};
  for (const field of SECRET_FIELDS) {
    const v = config[field];
    if (typeof v === 'string') refs[field] = v;
    else if (Array.isArray(v)) refs[field] = v.map(String).join(',');
  }
  return refs;
}
const SECRET_FIELDS = ['secretEnvs', 'tokenEnv', 'usernameEnv', 'passwordEnv'] as const;

/** Where a config's deliveries (and so its secrets) go: the URL, or the SMTP host, port and TLS mode (dropping TLS exposes the credentials on the way). */
export function destinationOf(config: Record<string, unknown>): string {
  if (typeof config.url === 'string') return config.url;
  return `${String(config.host)}:${String(config.port)}:${config.secure === true ? 'tls' : 'starttls'}`;
}

const sameRefs = (a: Record<string, string>, b: Record<string, string>) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/**
 * The operator rule for secrets: naming or changing a channel's secret variables, or changing
 * where a channel that names one delivers, needs the `admin` scope. Otherwise a `notify:write` key
 * could point a channel at its own server and receive the secret (an SMS token or SMTP password
 * sent as is, a webhook secret as a signing oracle). Throws a 403 naming the fields.
 */
export function checkSecretUse(before: Record<string, unknown> | null, after: Record<string, unknown>, admin: boolean): void {
  if (admin) return;
  const refsBefore = before ? secretRefs(before) : {};
  const refsAfter = secretRefs(after);
  const fields = Object.keys(refsAfter);
  if (!before) {
    if (fields.length === 0) return;
    throw forbiddenSecret(`Naming a secret variable (${fields.map((f) => `config.${f}`).join(', ')}) needs the admin scope: the channel would send or sign with it.`);
  }
  if (!sameRefs(refsBefore, refsAfter)) throw forbiddenSecret('Changing the secret variables of a channel (secretEnvs, tokenEnv, usernameEnv, passwordEnv) needs the admin scope.');
  if (Object.keys(refsBefore).length > 0 && destinationOf(before) !== destinationOf(after)) {
    throw forbiddenSecret(`Changing where a channel holding a secret delivers (${typeof after.url === 'string' ? 'config.url' : 'config.host/port/secure'}) needs the admin scope: its secret would go to the new destination.`);
  }
}
const forbiddenSecret = (detail: string) => new ProblemError('forbidden', { detail, extensions: { requiredScope: 'admin' } });

/** A 422 naming every secret variable of `config` that is not set (never a value). */
export function checkSecretsSet(config: Record<string, unknown>, secrets: SecretSource): void {
  const names = Object.values(secretRefs(config)).flatMap((v) => v.split(','));
  const unset = names.filter((n) => !secrets(n));
  if (unset.length) {
    throw new ProblemError('unprocessable', { detail: `Environment variable ${unset.join(', ')} is not set on this instance; set it in the server's environment first (every delivery would fail).`, extensions: { unsetVariables: unset } });
  }
}

export interface NotificationEvent {
  /** Dotted event type, e.g. `maintenance.changed`. */
  type: string;
  payload: Record<string, unknown>;
  /** W3C traceparent of the change: the deliveries join its trace. */
  traceparent?: string | null;
}

export interface ClaimedRow extends OutboxRow {
  channel: ChannelRow | null;
}

export type Finish =
  | { outcome: 'delivered'; statusCode: number | null }
  | { outcome: 'retry'; statusCode: number | null; error: string; delayMs: number }
  | { outcome: 'dead'; statusCode: number | null; error: string; disableChannel?: string };

export interface NotificationServiceDeps {
  db: Db;
  allowPrivate: boolean;
  /** Where channel secrets are read: a channel naming an unset variable is refused when written. */
  secrets: SecretSource;
  /** Records a system change (a channel switched off after a 410) in the audit trail, inside `tx`. */
  auditSystem?: (tx: DbOrTx, entry: { operation: string; targetType: string; targetId: number; reason: string; before: unknown; after: unknown }) => Promise<unknown>;
}

/** Channels and the outbox, without HTTP: writes take the caller's transaction. */
export function createNotificationService({ db, allowPrivate, secrets, auditSystem }: NotificationServiceDeps) {
  const channelById = async (q: DbOrTx, id: number) => (await q.select().from(notificationChannels).where(eq(notificationChannels.id, id)).limit(1))[0];
  const rethrowDuplicate = (name: string) => conflictOnUnique(`A notification channel named '${name}' already exists.`, { name });

  return {
    /** `admin`: whether the caller holds the admin scope (checkSecretUse). */
    async createChannel(tx: DbOrTx, input: CreateChannel, { admin }: { admin: boolean }): Promise<Channel> {
      const config = checkConfig(input.type, input.config, allowPrivate);
      checkSecretUse(null, config, admin);
      checkSecretsSet(config, secrets);
      const [row] = await tx
        .insert(notificationChannels)
        .values({ name: input.name, type: input.type, events: input.events, config, enabled: input.enabled ?? true })
        .returning()
        .catch(rethrowDuplicate(input.name));
      return toChannel(row!);
    },

    async listChannels(f: ChannelFilter & { limit: number }): Promise<Page<Channel>> {
      const where: SQL[] = [];
      const afterId = decodeIdCursor(f.cursor);
      if (afterId !== undefined) where.push(sql`${notificationChannels.id} > ${afterId}`);
      if (f.type) where.push(eq(notificationChannels.type, f.type));
      if (f.enabled !== undefined) where.push(eq(notificationChannels.enabled, f.enabled));
      const rows = await db.select().from(notificationChannels).where(and(...where)).orderBy(asc(notificationChannels.id)).limit(f.limit + 1);
      return toPage(rows, f.limit, (r) => [r.id], toChannel);
    },

    async channel(id: number): Promise<Channel | undefined> {
      const row = await channelById(db, id);
      return row && toChannel(row);
    },

    async updateChannel(tx: DbOrTx, id: number, input: UpdateChannel, { admin }: { admin: boolean }): Promise<{ before: Channel; after: Channel } | undefined> {
      const [locked] = await tx.select().from(notificationChannels).where(eq(notificationChannels.id, id)).for('update');
      if (!locked) return undefined;
      const config = input.config ? checkConfig(locked.type, input.config, allowPrivate) : undefined;
      if (config) {
        checkSecretUse(locked.config, config, admin);
        // Only variables newly named: a channel whose variable went missing can still be edited.
        const known = new Set(Object.values(secretRefs(locked.config)).flatMap((v) => v.split(',')));
        checkSecretsSet(config, (name) => (known.has(name) ? 'known' : secrets(name)));
      }
      const [row] = await tx
        .update(notificationChannels)
        .set({
          ...(input.name !== undefined && { name: input.name }),
          ...(input.events !== undefined && { events: input.events }),
          ...(config !== undefined && { config }),
          ...(input.enabled !== undefined && { enabled: input.enabled, disabledReason: input.enabled ? null : locked.disabledReason }),
          updatedAt: new Date(),
        })
        .where(eq(notificationChannels.id, id))
        .returning()
        .catch(rethrowDuplicate(input.name ?? locked.name));
      return { before: toChannel(locked), after: toChannel(row!) };
    },

    async removeChannel(tx: DbOrTx, id: number): Promise<Channel | undefined> {
      const [row] = await tx.delete(notificationChannels).where(eq(notificationChannels.id, id)).returning();
      return row && toChannel(row);
    },

    /** The channel with its config, for a test delivery. */
    channelRow: (id: number) => channelById(db, id),

    /**
     * Writes one outbox row per enabled channel taking `event` (or per listed channel), in the
     * caller's transaction: the rows exist exactly when the change that caused them commits.
     */
    async enqueue(tx: DbOrTx, event: NotificationEvent, opts: { channelIds?: readonly number[] } = {}): Promise<{ eventId: string; items: OutboxItem[] }> {
      const eventId = newId('evt');
      const channels = await tx
        .select({ id: notificationChannels.id, events: notificationChannels.events })
        .from(notificationChannels)
        .where(opts.channelIds ? and(eq(notificationChannels.enabled, true), inArray(notificationChannels.id, [...opts.channelIds])) : eq(notificationChannels.enabled, true))
        .orderBy(asc(notificationChannels.id));
      const targets = opts.channelIds ? channels : channels.filter((c) => subscribes(c.events, event.type));
      if (targets.length === 0) return { eventId, items: [] };
      const rows = await tx
        .insert(notificationOutbox)
        .values(
          targets.map((c) => ({
            messageId: newId('msg'),
            eventId,
            channelId: c.id,
            eventType: event.type,
            payload: event.payload,
            maxAttempts: MAX_ATTEMPTS,
            traceparent: event.traceparent ?? null,
          })),
        )
        .returning();
      return { eventId, items: rows.map(toOutboxItem) };
    },

    async listOutbox(f: OutboxFilter & { limit: number }): Promise<Page<OutboxItem>> {
      const where: SQL[] = [];
      const beforeId = decodeIdCursor(f.cursor);
      if (beforeId !== undefined) where.push(lt(notificationOutbox.id, beforeId));
      if (f.status) where.push(eq(notificationOutbox.status, f.status));
      if (f.channelId !== undefined) where.push(eq(notificationOutbox.channelId, f.channelId));
      if (f.eventType) where.push(eq(notificationOutbox.eventType, f.eventType));
      if (f.eventId) where.push(eq(notificationOutbox.eventId, f.eventId));
      const rows = await db.select().from(notificationOutbox).where(and(...where)).orderBy(desc(notificationOutbox.id)).limit(f.limit + 1);
      return toPage(rows, f.limit, (r) => [r.id], toOutboxItem);
    },

    async outboxItem(id: number): Promise<OutboxItem | undefined> {
      const [row] = await db.select().from(notificationOutbox).where(eq(notificationOutbox.id, id)).limit(1);
      return row && toOutboxItem(row);
    },

    /**
     * A dead row back to pending with a fresh set of attempts, due now. Undefined when the row
     * does not exist; a ProblemError 409 when it is not dead.
     */
    async retry(tx: DbOrTx, id: number): Promise<{ before: OutboxItem; after: OutboxItem } | undefined> {
      const [row] = await tx.select().from(notificationOutbox).where(eq(notificationOutbox.id, id)).for('update');
      if (!row) return undefined;
      if (row.status !== 'dead') throw new ProblemError('conflict', { detail: `Outbox row ${id} is ${row.status}; only dead rows can be retried.`, extensions: { status: row.status } });
      // A row whose channel is off would only go dead again at once: say why instead.
      const channel = row.channelId === null ? undefined : await channelById(tx, row.channelId);
      if (!channel) throw new ProblemError('conflict', { detail: `Outbox row ${id} cannot be retried: its channel${row.channelId === null ? '' : ` ${row.channelId}`} was deleted.`, extensions: { status: row.status, channelId: row.channelId, channelState: 'deleted' } });
      if (!channel.enabled) {
        throw new ProblemError('conflict', {
          detail: `Outbox row ${id} cannot be retried: channel ${channel.id} (${channel.name}) is disabled${channel.disabledReason ? ` (${channel.disabledReason})` : ''}; enable it first (PATCH with "enabled": true).`,
          extensions: { status: row.status, channelId: channel.id, channelState: 'disabled' },
        });
      }
      const [after] = await tx
        .update(notificationOutbox)
        .set({ status: 'pending', attempts: 0, nextAttemptAt: new Date(), lastError: null, lockedBy: null, lockedUntil: null, updatedAt: new Date() })
        .where(eq(notificationOutbox.id, id))
        .returning();
      return { before: toOutboxItem(row), after: toOutboxItem(after!) };
    },

    /**
     * Claims up to `limit` due rows for `owner`: pending rows whose time has come and sending rows
     * whose lease ran out (their dispatcher died). One statement; `SKIP LOCKED` lets concurrent
     * dispatchers take disjoint rows, and the attempt count taken here fences a late finisher.
     */
    async claimDue(owner: string, limit: number, leaseMs: number, now = new Date()): Promise<ClaimedRow[]> {
      const due = db
        .select({ id: notificationOutbox.id })
        .from(notificationOutbox)
        .where(
          or(
            and(eq(notificationOutbox.status, 'pending'), lte(notificationOutbox.nextAttemptAt, now)),
            and(eq(notificationOutbox.status, 'sending'), lt(notificationOutbox.lockedUntil, now)),
          ),
        )
        .orderBy(asc(notificationOutbox.nextAttemptAt), asc(notificationOutbox.id))
        .limit(limit)
        .for('update', { skipLocked: true });
      const rows = await db
        .update(notificationOutbox)
        .set({ status: 'sending', attempts: sql`${notificationOutbox.attempts} + 1`, lockedBy: owner, lockedUntil: new Date(now.getTime() + leaseMs), updatedAt: now })
        .where(inArray(notificationOutbox.id, due))
        .returning();
      if (rows.length === 0) return [];
      const ids = [...new Set(rows.map((r) => r.channelId).filter((id): id is number => id !== null))];
      const channels = ids.length ? await db.select().from(notificationChannels).where(inArray(notificationChannels.id, ids)) : [];
      const byId = new Map(channels.map((c) => [c.id, c]));
      return rows.sort((a, b) => a.id - b.id).map((r) => ({ ...r, channel: r.channelId === null ? null : (byId.get(r.channelId) ?? null) }));
    },

    /**
     * Records an attempt's outcome, only if `owner` still holds the claim it made (same attempt
     * count): a dispatcher whose lease ran out and whose row was taken over changes nothing.
     * A 410 also switches the channel off. False when the claim was lost.
     */
    async finish(row: ClaimedRow, owner: string, result: Finish, now = new Date()): Promise<boolean> {
      const last = result.outcome === 'retry' && row.attempts >= row.maxAttempts;
      const status = result.outcome === 'delivered' ? 'delivered' : result.outcome === 'dead' || last ? 'dead' : 'pending';
      const error = result.outcome === 'delivered' ? null : result.error.slice(0, 500);
      return db.transaction(async (tx) => {
        const updated = await tx
          .update(notificationOutbox)
          .set({
            status,
            lastError: error,
            lastStatusCode: result.statusCode,
            nextAttemptAt: result.outcome === 'retry' && !last ? new Date(now.getTime() + result.delayMs) : row.nextAttemptAt,
            deliveredAt: status === 'delivered' ? now : null,
            lockedBy: null,
            lockedUntil: null,
            updatedAt: now,
          })
          .where(and(eq(notificationOutbox.id, row.id), eq(notificationOutbox.lockedBy, owner), eq(notificationOutbox.attempts, row.attempts), eq(notificationOutbox.status, 'sending')))
          .returning({ id: notificationOutbox.id });
        if (updated.length === 0) return false;
        if (result.outcome === 'dead' && result.disableChannel && row.channelId !== null) {
          const [off] = await tx
            .update(notificationChannels)
            .set({ enabled: false, disabledReason: result.disableChannel, updatedAt: now })
            .where(and(eq(notificationChannels.id, row.channelId), eq(notificationChannels.enabled, true)))
            .returning();
          if (off) {
            const after = toChannel(off);
            await auditSystem?.(tx, { operation: 'notify-channel.disable', targetType: 'notify-channel', targetId: off.id, reason: result.disableChannel, before: { ...after, enabled: true, disabledReason: null }, after });
          }
        }
        return true;
      });
    },

    /**
     * Gives a claim back untouched (an attempt interrupted by shutdown): pending, due now, the
     * attempt not counted, so another instance delivers it at once. False when the claim was lost.
     */
    async release(row: ClaimedRow, owner: string, now = new Date()): Promise<boolean> {
      const released = await db
        .update(notificationOutbox)
        .set({ status: 'pending', attempts: row.attempts - 1, nextAttemptAt: now, lockedBy: null, lockedUntil: null, updatedAt: now })
        .where(and(eq(notificationOutbox.id, row.id), eq(notificationOutbox.lockedBy, owner), eq(notificationOutbox.attempts, row.attempts), eq(notificationOutbox.status, 'sending')))
        .returning({ id: notificationOutbox.id });
      return released.length > 0;
    },

    /**
     * What the outbox gauges show, by channel type (`none` for rows whose channel was deleted):
     * rows waiting (pending, sending) and dead letters, with how long the oldest of each has
     * waited. Only those statuses are read (status index); delivered rows are not.
     */
    async queueFigures(): Promise<Array<{ channelType: ChannelType | 'none'; status: 'pending' | 'sending' | 'dead'; rows: number; oldestSeconds: number }>> {
      const rows = await db
        .select({
          channelType: notificationChannels.type,
          status: notificationOutbox.status,
          n: sql<number>`count(*)::int`,
          oldest: sql<number>`extract(epoch from now() - min(${notificationOutbox.createdAt}))::float8`,
        })
        .from(notificationOutbox)
        .leftJoin(notificationChannels, eq(notificationChannels.id, notificationOutbox.channelId))
        .where(inArray(notificationOutbox.status, ['pending', 'sending', 'dead']))
        .groupBy(notificationChannels.type, notificationOutbox.status);
      return rows.map((r) => ({
        channelType: r.channelType ?? 'none',
        status: r.status as 'pending' | 'sending' | 'dead',
        rows: Number(r.n),
        oldestSeconds: Math.max(0, Number(r.oldest)),
      }));
    },

    /** Outbox rows by status (one grouped count), for the admin overview. */
    async figures(): Promise<Record<string, number>> {
      const rows = await db.select({ status: notificationOutbox.status, n: sql<number>`count(*)::int` }).from(notificationOutbox).groupBy(notificationOutbox.status);
      const out: Record<string, number> = { pending: 0, sending: 0, delivered: 0, dead: 0 };
      for (const r of rows) out[r.status] = Number(r.n);
      return out;
    },
  };
}
export type NotificationService = ReturnType<typeof createNotificationService>;
