import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'drizzle-orm';
import { withTimeout, type Database, type DbOrTx } from '../db/client.js';
import { safeMessage } from './secrets.js';

/**
 * The one in-memory cache of hot-path state (blocklist, keys, flags, config, mode...). Each
 * entry is loaded at start, reloaded when any instance sends `NOTIFY valhalla_state, '<name>'`
 * (sent inside the writer's transaction, so it is delivered on commit), and reloaded in full
 * every `reloadIntervalMs` as a safety net for a missed notification. Readers never wait on
 * the database: `get()` returns the last loaded value.
 */
export const STATE_CHANNEL = 'valhalla_state';

export interface StateEntry<T> {
  readonly name: string;
  get(): T;
  /** Reloads now (after a local write, so this instance does not wait for the notification). */
  reload(): Promise<void>;
  /** Resolves when a reload of this entry has completed; used by readiness and tests. */
  readonly loadedAt: number;
}

/**
 * Whether this instance hears other instances' changes right now. `listening`: subscribed and,
 * on PostgreSQL, the last heartbeat came back; `lost`: the subscription is gone or unverified
 * (notifications may be missed, so state can be stale up to the periodic reload) and is being
 * re-established; `stopped`: before start or after stop.
 */
export interface ListenerStatus {
  state: 'listening' | 'lost' | 'stopped';
  /** ISO 8601 time of the last change of `state`. */
  since: string;
  /** Re-subscriptions after the first one (each followed by a full reload). */
  resubscribes: number;
  /** Why the listener was last found lost (no driver text: it may name hosts). */
  reason: string | null;
}

export interface StateCacheOptions {
  /**
   * PostgreSQL only: every this many ms the cache sends itself a NOTIFY and expects it back on
   * its own subscription within a second (or this long, if longer). A heartbeat that cannot be sent means the
   * database is down; one that does not come back means the subscription is lost (postgres.js
   * drops a re-subscribe that fails). Either way the cache re-subscribes as soon as it can and
   * reloads every entry, since notifications sent meanwhile are gone. Default 500.
   */
  heartbeatMs?: number;
  /** Called each time the cache re-subscribes (for metrics), with why. */
  onResubscribe?: (reason: ResubscribeReason) => void;
}

export interface StateCache {
  register<T>(name: string, load: () => Promise<T>, initial: T): StateEntry<T>;
  /** Tells every instance (this one included) to reload `name`; call it inside the write's transaction. */
  notify(tx: DbOrTx, name: string): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  reloadAll(): Promise<void>;
  names(): string[];
  listenerStatus(): ListenerStatus;
}

const HEARTBEAT_PREFIX = '~heartbeat:';
/** Longest wait for one state load or one LISTEN before it counts as failed. */
const LOAD_TIMEOUT_MS = 10_000;

/**
 * - `driver-reconnect`: postgres.js re-established the LISTEN after its connection dropped;
 * - `after-outage`: the database was unreachable, so the subscription was renewed once it answered;
 * - `heartbeat-missed`: the database answered but the listener did not hear the heartbeat.
 */
export type ResubscribeReason = 'driver-reconnect' | 'after-outage' | 'heartbeat-missed';

export function createStateCache(
  database: Database,
  log: FastifyBaseLogger,
  reloadIntervalMs: number,
  options: StateCacheOptions = {},
): StateCache {
  const heartbeatMs = options.heartbeatMs ?? 500;
  const entries = new Map<string, { reload: () => Promise<void> }>();
  let unlisten: (() => Promise<void>) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let running = false;
  let subscriptions = 0;
  let resubscribing = false;
  const status: ListenerStatus = { state: 'stopped', since: new Date().toISOString(), resubscribes: 0, reason: null };
  const token = `${HEARTBEAT_PREFIX}${randomUUID()}:`;
  let heartbeatSeq = 0;
  let heartbeatHeard = 0;

  function setState(state: ListenerStatus['state'], reason: string | null = status.reason): void {
    if (status.state !== state) status.since = new Date().toISOString();
    status.state = state;
    status.reason = reason;
  }

  async function reloadAll(): Promise<void> {
    await Promise.all([...entries.values()].map((e) => e.reload()));
  }

  function onNotification(payload: string): void {
    if (payload.startsWith(HEARTBEAT_PREFIX)) {
      if (payload.startsWith(token)) heartbeatHeard = Math.max(heartbeatHeard, Number(payload.slice(token.length)));
      return;
    }
    const entry = entries.get(payload);
    if (entry) void entry.reload();
  }

  // The driver calls this on the first subscription and again after each reconnect of its
  // listening connection: whatever was notified in between is lost, so reload everything.
  function onSubscribed(): void {
    subscriptions++;
    if (subscriptions === 1 || !running || resubscribing) return;
    status.resubscribes++;
    options.onResubscribe?.('driver-reconnect');
    log.info({ resubscribes: status.resubscribes }, 'state listener re-subscribed; reloading all state');
    setState('listening', null);
    void reloadAll();
  }

  async function subscribe(): Promise<void> {
    unlisten = await database.listen(STATE_CHANNEL, onNotification, onSubscribed);
  }

  /** Drops whatever is left of the old subscription and subscribes again; then reloads all. */
  async function resubscribe(why: ResubscribeReason, reason: string): Promise<void> {
    setState('lost', reason);
    const old = unlisten;
    unlisten = undefined;
    resubscribing = true;
    try {
      await quietly(old?.());
      // On a dead listening connection the LISTEN never answers; give up and try again at the
      // next heartbeat (the driver's connection is cut by the database client's watchdog).
      await withTimeout(subscribe(), LOAD_TIMEOUT_MS, 'LISTEN');
      status.resubscribes++;
      options.onResubscribe?.(why);
      log.warn({ reason, resubscribes: status.resubscribes }, 'state listener re-subscribed; reloading all state');
      setState('listening', null);
      await reloadAll();
    } catch (err) {
      log.warn({ reason, err: { message: safeMessage(err) } }, 'state listener re-subscribe failed; retrying');
    } finally {
      resubscribing = false;
    }
  }

  async function heartbeat(): Promise<void> {
    const seq = ++heartbeatSeq;
    try {
      await database.notify(STATE_CHANNEL, `${token}${seq}`);
    } catch {
      // The database is unreachable: nothing can be heard, and the subscription cannot be
      // trusted once it is back (postgres.js may have dropped its re-subscribe).
      if (status.state === 'listening') log.warn('state listener unverified: the database is unreachable');
      setState('lost', 'database unreachable');
      return;
    }
    if (status.state === 'lost') {
      await resubscribe('after-outage', 'the database answers again');
      return;
    }
    // A busy event loop or database can delay the echo: allow it a second before calling it lost.
    const deadline = Date.now() + Math.max(heartbeatMs, 1000);
    while (heartbeatHeard < seq && Date.now() < deadline && running) await sleep(10);
    if (heartbeatHeard < seq && running) {
      log.warn('state listener lost: its heartbeat did not come back');
      await resubscribe('heartbeat-missed', 'heartbeat not received');
    }
  }

  function scheduleHeartbeat(): void {
    if (!running) return;
    heartbeatTimer = setTimeout(() => {
      heartbeat()
        .catch((err) => log.warn({ err: { message: safeMessage(err) } }, 'state listener heartbeat failed'))
        .finally(scheduleHeartbeat);
    }, heartbeatMs);
    heartbeatTimer.unref();
  }

  return {
    register<T>(name: string, load: () => Promise<T>, initial: T): StateEntry<T> {
      if (entries.has(name)) throw new Error(`state cache entry '${name}' registered twice`);
      let value = initial;
      let loadedAt = 0;
      let inFlight: Promise<void> | undefined;
      let again = false;
      const reload = (): Promise<void> => {
        // Coalesce bursts of notifications: one load in flight, at most one queued behind it.
        if (inFlight) {
          again = true;
          return inFlight;
        }
        inFlight = (async () => {
          do {
            again = false;
            try {
              // A load stuck on a dead connection must not hold every later reload behind it.
              value = await withTimeout(load(), LOAD_TIMEOUT_MS, `state '${name}' load`);
              loadedAt = Date.now();
            } catch (err) {
              log.warn({ state: name, err: { message: safeMessage(err) } }, 'state reload failed; keeping the last value');
            }
          } while (again);
        })().finally(() => {
          inFlight = undefined;
        });
        return inFlight;
      };
      entries.set(name, { reload });
      return {
        name,
        get: () => value,
        reload,
        get loadedAt() {
          return loadedAt;
        },
      };
    },
    async notify(tx, name) {
      await tx.execute(sql`select pg_notify(${STATE_CHANNEL}, ${name})`);
    },
    async start() {
      await reloadAll();
      await subscribe();
      running = true;
      setState('listening', null);
      timer = setInterval(() => void reloadAll(), reloadIntervalMs);
      timer.unref();
      // In-process PGlite cannot lose its subscription; only a server connection needs checking.
      if (database.driver === 'postgres') scheduleHeartbeat();
    },
    async stop() {
      running = false;
      if (timer) clearInterval(timer);
      if (heartbeatTimer) clearTimeout(heartbeatTimer);
      timer = heartbeatTimer = undefined;
      await quietly(unlisten?.());
      unlisten = undefined;
      setState('stopped', null);
    },
    reloadAll,
    names: () => [...entries.keys()],
    listenerStatus: () => ({ ...status }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Awaits an UNLISTEN for at most a second, ignoring its failure: the old connection may be dead. */
async function quietly(unlistening: Promise<void> | undefined): Promise<void> {
  if (unlistening) await withTimeout(unlistening, 1000, 'unlisten').catch(() => {});
}
