import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'drizzle-orm';
import type { Database, DbOrTx } from '../db/client.js';
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

export interface StateCache {
  register<T>(name: string, load: () => Promise<T>, initial: T): StateEntry<T>;
  /** Tells every instance (this one included) to reload `name`; call it inside the write's transaction. */
  notify(tx: DbOrTx, name: string): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  reloadAll(): Promise<void>;
  names(): string[];
}

export function createStateCache(database: Database, log: FastifyBaseLogger, reloadIntervalMs: number): StateCache {
  const entries = new Map<string, { reload: () => Promise<void> }>();
  let unlisten: (() => Promise<void>) | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function reloadAll(): Promise<void> {
    await Promise.all([...entries.values()].map((e) => e.reload()));
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
              value = await load();
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
      unlisten = await database.listen(STATE_CHANNEL, (payload) => {
        const entry = entries.get(payload);
        if (entry) void entry.reload();
      });
      timer = setInterval(() => void reloadAll(), reloadIntervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      if (unlisten) await unlisten().catch(() => {});
      unlisten = undefined;
    },
    reloadAll,
    names: () => [...entries.keys()],
  };
}
