import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { sql, type SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';

/** The Drizzle handle every pack uses; the same type on PGlite and on postgres.js. */
export type Db = PgDatabase<PgQueryResultHKT>;
export type Tx = PgTransaction<PgQueryResultHKT>;
/** A write that must join the caller's transaction accepts either. */
export type DbOrTx = Db | Tx;

export type NotificationHandler = (payload: string) => void;

export interface Database {
  readonly driver: 'pglite' | 'postgres';
  readonly db: Db;
  /**
   * Statements sent through Drizzle by this process so far (kernel and packs alike). Tests read
   * it around a burst of requests to show the hot path sends none.
   */
  readonly queryCount: number;
  /** Subscribes to a PostgreSQL NOTIFY channel; survives reconnects on postgres.js. */
  listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>>;
  /**
   * Runs `fn` while holding the session-level advisory lock `key`, or returns `undefined`
   * without running it when another session holds the lock (`wait: false`).
   */
  withAdvisoryLock<T>(key: bigint, fn: () => Promise<T>, opts?: { wait?: boolean }): Promise<T | undefined>;
  /** `select 1`, bounded by `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgres:// URL; without it the embedded PGlite is used. */
  url?: string;
  /** PGlite data directory; omitted means in memory. */
  dataDir?: string;
  /** An in-memory PGlite starts from this `dumpDataDir()` tarball instead of an empty cluster. */
  loadDataDir?: Blob;
  /** postgres.js pool size. */
  max?: number;
  applicationName?: string;
}

export class DatabaseTimeoutError extends Error {
  readonly code = 'DB_TIMEOUT';
  constructor(what: string, ms: number) {
    super(`${what} did not answer within ${ms} ms`);
  }
}

/** Rows of a raw `db.execute()` result: postgres.js returns an array, PGlite `{ rows }`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  const rows = (result as { rows?: unknown }).rows;
  return Array.isArray(rows) ? (rows as T[]) : [];
}

export async function queryRows<T>(db: DbOrTx, query: SQL): Promise<T[]> {
  return rowsOf<T>(await db.execute(query));
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DatabaseTimeoutError(what, ms)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function createDatabase(options: DatabaseOptions = {}): Promise<Database> {
  return options.url ? createPostgres(options.url, options) : createPglite(options.dataDir, options.loadDataDir);
}

async function createPglite(dataDir?: string, loadDataDir?: Blob): Promise<Database> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const client = dataDir ? new PGlite(dataDir) : new PGlite(loadDataDir ? { loadDataDir } : {});
  await client.waitReady;
  const counter = queryCounter();
  const db: Db = drizzlePglite({ client, logger: counter });
  // PGlite is one connection in this process: advisory locks are re-entrant for it, so an
  // in-process set is what keeps two callers apart.
  const held = new Set<bigint>();
  return {
    driver: 'pglite',
    db,
    get queryCount() {
      return counter.count;
    },
    async listen(channel, handler) {
      const unsubscribe = await client.listen(channel, handler);
      return async () => unsubscribe();
    },
    async withAdvisoryLock(key, fn, opts = {}) {
      while (held.has(key)) {
        if (opts.wait === false) return undefined;
        await new Promise((r) => setTimeout(r, 10));
      }
      held.add(key);
      try {
        return await fn();
      } finally {
        held.delete(key);
      }
    },
    async ping(timeoutMs) {
      await withTimeout(client.query('select 1'), timeoutMs, 'database');
    },
    async close() {
      if (!client.closed) await client.close();
    },
  };
}

async function createPostgres(url: string, options: DatabaseOptions): Promise<Database> {
  const client = postgres(url, {
    max: options.max ?? 10,
    idle_timeout: 30,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? 'valhalla-kernel' },
  });
  const counter = queryCounter();
  const db: Db = drizzlePostgres({ client, logger: counter });
  return {
    driver: 'postgres',
    db,
    get queryCount() {
      return counter.count;
    },
    async listen(channel, handler) {
      const sub = await client.listen(channel, handler);
      return () => sub.unlisten();
    },
    async withAdvisoryLock(key, fn, opts = {}) {
      // A session lock needs one connection for its whole life: reserve it from the pool.
      const conn = await client.reserve();
      try {
        if (opts.wait === false) {
          const [row] = await conn<{ locked: boolean }[]>`select pg_try_advisory_lock(${key.toString()}::bigint) as locked`;
          if (!row?.locked) return undefined;
        } else {
          await conn`select pg_advisory_lock(${key.toString()}::bigint)`;
        }
        try {
          return await fn();
        } finally {
          await conn`select pg_advisory_unlock(${key.toString()}::bigint)`.catch(() => {});
        }
      } finally {
        conn.release();
      }
    },
    async ping(timeoutMs) {
      await withTimeout(client`select 1`.then(() => undefined), timeoutMs, 'database');
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

/** Stable 63-bit advisory-lock key for a name, so packs never pick colliding numbers by hand. */
export function lockKey(name: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(`valhalla:${name}`)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h & 0x7fffffffffffffffn;
}

export const nowSql = sql`now()`;

/** SQLSTATE or driver code of an error, looking through drizzle's wrapper (`cause`). */
export function pgErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'DB_TIMEOUT',
  '57P01', '57P02', '57P03', '53300',
]);

/** True when the error says the database cannot be reached, as opposed to a bad query. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && /PGlite is closed/i.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Drizzle's logger hook, used only to count statements (it never logs them: they may hold values). */
function queryCounter(): { count: number; logQuery(): void } {
  return {
    count: 0,
    logQuery() {
      this.count++;
    },
  };
}

/** PostgreSQL's SQLSTATE for a unique violation (a duplicate name is the client's 409, not a 500). */
export const UNIQUE_VIOLATION = '23505';

/** A `LIKE` pattern for "starts with `prefix`": `%`, `_` and `\` in the prefix are literal. */
export const likePrefix = (prefix: string): string => `${prefix.replace(/[\\%_]/g, '\\$&')}%`;
