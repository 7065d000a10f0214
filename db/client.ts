import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { sql, type SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';

/** The Drizzle handle every pack uses; the same type on PGlite and on postgres.js. */
export type Db = PgDatabase<PgQueryResultHKT>;
export type Tx = PgTransaction<PgQueryResultHKT>;
/** A write that must join the caller's transaction accepts either. */
export type DbOrTx = Db | Tx;

export type NotificationHandler = (payload: string) => void;

/** Called each time a LISTEN is (re)established: notifications sent while it was down are lost. */
export type SubscribedHandler = () => void;

/** How long a statement may wait for a live connection by default (`DB_ACQUIRE_TIMEOUT_MS`). */
export const DEFAULT_ACQUIRE_TIMEOUT_MS = 2000;

export interface Database {
  readonly driver: 'pglite' | 'postgres';
  readonly db: Db;
  /**
   * Statements sent through Drizzle by this process so far (kernel and packs alike). Tests read
   * it around a burst of requests to show the hot path sends none.
   */
  readonly queryCount: number;
  /**
   * Subscribes to a PostgreSQL NOTIFY channel. On postgres.js the driver re-subscribes after its
   * listening connection drops and calls `onSubscribed` each time it has (the first time too);
   * a re-subscribe that fails is dropped by the driver, which is why the state cache checks its
   * subscription end to end with heartbeats (src/state-cache.ts).
   */
  listen(channel: string, handler: NotificationHandler, onSubscribed?: SubscribedHandler): Promise<() => Promise<void>>;
  /** `NOTIFY channel, payload` outside Drizzle (not counted in `queryCount`: heartbeats, not app queries). */
  notify(channel: string, payload: string): Promise<void>;
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
  /**
   * Milliseconds a statement, transaction or reserved connection may wait for a live
   * connection (postgres.js: connect timeout and queue wait). Past it the caller gets
   * `DatabaseTimeoutError` (a 503 problem) and the statement is withdrawn: it never runs later.
   */
  acquireTimeoutMs?: number;
  /**
   * Milliseconds one statement may run (PostgreSQL `statement_timeout`, set on every pooled
   * connection, with `idle_in_transaction_session_timeout` at least 5 s). A connection that has sent something and heard nothing back for this long plus
   * two seconds is a dead link (a partition: the peer or a proxy holds the TCP connection open
   * and never answers) and is destroyed, so its queries fail and the pool opens a fresh one.
   * 0 turns both off.
   */
  statementTimeoutMs?: number;
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

/**
 * PGlite's PostgreSQL settings: its defaults plus a smaller buffer pool. PostgreSQL's default
 * `shared_buffers` (128MB, which PGlite's initdb keeps) is touched in full at start inside the
 * WebAssembly memory and stays resident: 32MB held the first and second boot 100-125 MiB lower
 * (`npm run bench:memory`). A control plane's working set is small (the hot path reads state
 * from memory) and the data files stay in the OS page cache behind it.
 */
export const PGLITE_START_PARAMS: readonly string[] = [...PGlite.defaultStartParams, '-c', 'shared_buffers=32MB'];

/**
 * Creates the PGlite cluster in `dataDir` (initdb) in a short-lived child process. PGlite runs
 * initdb in a second WebAssembly PostgreSQL instance beside the first, and a process that did so
 * kept 80-450 MiB more resident for the rest of its life than one that opened an existing cluster
 * (WebAssembly memories are freed late, and malloc keeps what a worker thread used): measured
 * with `npm run bench:memory`. In a child, all of that goes back to the system when it exits,
 * before the kernel opens the cluster. If the child cannot run (or fails before writing
 * anything), the caller's in-process open creates the cluster as before.
 */
async function createClusterInChild(dataDir: string): Promise<void> {
  // import.meta.resolve: Node's own resolution (the ESM build); a loader that lacks it gets the
  // package's CommonJS build, which exports PGlite too.
  const pglite = typeof import.meta.resolve === 'function' ? import.meta.resolve('@electric-sql/pglite') : pathToFileURL(createRequire(import.meta.url).resolve('@electric-sql/pglite')).href;
  const script = `const { PGlite } = await import(${JSON.stringify(pglite)});
const pg = new PGlite(${JSON.stringify(path.resolve(dataDir))}, { startParams: ${JSON.stringify(PGLITE_START_PARAMS)} });
await pg.waitReady;
await pg.close();`;
  const exit = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    let stderr = '';
    const child = spawn(process.execPath, ['--input-type=module', '--eval', script], { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-4000)));
    child.once('error', (err) => resolve({ code: null, stderr: err.message }));
    child.once('exit', (code) => resolve({ code, stderr }));
  });
  // A half-made cluster is not something to open: say why the child failed.
  if (exit.code !== 0 && existsSync(path.join(dataDir, 'PG_VERSION'))) {
    throw new Error(`creating the PGlite cluster in ${dataDir} failed: ${exit.stderr.trim().split('\n').slice(-3).join(' ')}`);
  }
}

async function createPglite(dataDir?: string, loadDataDir?: Blob): Promise<Database> {
  let lock: DataDirLock | undefined;
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true });
    lock = await lockDataDir(dataDir);
  }
  let client: PGlite | undefined;
  try {
    if (dataDir && !existsSync(path.join(dataDir, 'PG_VERSION'))) await createClusterInChild(dataDir);
    const startParams = [...PGLITE_START_PARAMS];
    client = dataDir ? new PGlite(dataDir, { startParams }) : new PGlite(loadDataDir ? { loadDataDir, startParams } : { startParams });
    await client.waitReady;
  } catch (err) {
    lock?.release();
    throw err;
  }
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
    async listen(channel, handler, onSubscribed) {
      // In-process: the subscription cannot drop, so it is established exactly once.
      const unsubscribe = await client.listen(channel, handler);
      onSubscribed?.();
      return async () => unsubscribe();
    },
    async notify(channel, payload) {
      await client.query('select pg_notify($1, $2)', [channel, payload]);
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
      try {
        if (!client.closed) await client.close();
      } finally {
        lock?.release();
      }
    },
  };
}

async function createPostgres(url: string, options: DatabaseOptions): Promise<Database> {
  const acquireMs = options.acquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS;
  const statementMs = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const watchdog = statementMs > 0 && !wantsTls(url) ? createSilenceWatchdog(statementMs + 2000) : undefined;
  const client = postgres(url, {
    max: options.max ?? 10,
    idle_timeout: 30,
    connect_timeout: acquireMs / 1000,
    backoff: reconnectDelaySeconds,
    onnotice: () => {},
    ...(watchdog && { socket: watchdog.connect }),
    connection: {
      application_name: options.applicationName ?? 'valhalla-kernel',
      // A client lost to a partition leaves its session open on the server, idle in its
      // transaction and holding its locks (the audit chain's advisory lock, row locks) until
      // the server's TCP keepalive notices, hours later: the server ends such sessions itself.
      ...(statementMs > 0 && { statement_timeout: statementMs, idle_in_transaction_session_timeout: Math.max(statementMs, 5000) }),
    },
  });
  const counter = queryCounter();
  const db: Db = drizzlePostgres({ client: withAcquireDeadline(client, acquireMs), logger: counter });
  // A probe (readiness ping, state heartbeat) that timed out may sit on a connection frozen by a
  // partition: drop the pool's idle connections so the next request opens a fresh one.
  let lastSuspect = 0;
  const suspectOnTimeout = async (probe: Promise<void>): Promise<void> => {
    try {
      await probe;
    } catch (err) {
      if (err instanceof DatabaseTimeoutError && Date.now() - lastSuspect > 10_000) {
        lastSuspect = Date.now();
        watchdog?.dropIdle();
      }
      throw err;
    }
  };
  return {
    driver: 'postgres',
    db,
    get queryCount() {
      return counter.count;
    },
    async listen(channel, handler, onSubscribed) {
      const sub = await client.listen(channel, handler, onSubscribed);
      return () => sub.unlisten();
    },
    async notify(channel, payload) {
      await suspectOnTimeout(within(client`select pg_notify(${channel}, ${payload})`.then(() => undefined), acquireMs));
    },
    async withAdvisoryLock(key, fn, opts = {}) {
      // A session lock needs one connection for its whole life: reserve it from the pool.
      const conn = await reserveWithin(client, acquireMs);
      let held: (() => void) | undefined;
      try {
        if (opts.wait === false) {
          const [row] = await conn<{ locked: boolean; pid: number }[]>`select pg_try_advisory_lock(${key.toString()}::bigint) as locked, pg_backend_pid() as pid`;
          if (!row?.locked) return undefined;
          held = watchdog?.hold(row.pid);
        } else {
          const [row] = await conn<{ pid: number }[]>`select pg_advisory_lock(${key.toString()}::bigint), pg_backend_pid() as pid`;
          held = watchdog?.hold(row!.pid);
        }
        try {
          return await fn();
        } finally {
          // On a connection that died meanwhile the unlock fails; the server released the lock
          // with the session.
          await conn`select pg_advisory_unlock(${key.toString()}::bigint)`.catch(() => {});
        }
      } finally {
        held?.();
        conn.release();
      }
    },
    async ping(timeoutMs) {
      await suspectOnTimeout(withTimeout(client`select 1`.then(() => undefined), timeoutMs, 'database'));
    },
    async close() {
      watchdog?.stop();
      await client.end({ timeout: 5 });
    },
  };
}

/** Default `statementTimeoutMs` (`DB_STATEMENT_TIMEOUT_MS`). */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;

/** Whether the URL asks for TLS: the watchdog's plain socket is then not used (see below). */
function wantsTls(url: string): boolean {
  const mode = new URL(url).searchParams.get('sslmode') ?? new URL(url).searchParams.get('ssl');
  return mode !== null && mode !== 'disable' && mode !== 'false';
}

/**
 * The sockets postgres.js opens, watched for a dead link: a connection that has sent something
 * since the server last said ReadyForQuery, and has received nothing for `silenceMs`, is
 * destroyed with ETIMEDOUT, so its queries fail and the pool opens a fresh connection. Server-side
 * `statement_timeout` (shorter) answers a slow statement before that, and an idle connection (or
 * the LISTEN one, waiting for notifications) has nothing outstanding, so only a link that stopped
 * carrying bytes is cut. TCP keepalive cannot see such a link when a proxy or load balancer in
 * front of PostgreSQL holds the connection open. Handed to postgres.js as its `socket` option
 * (plain TCP or a Unix socket; with TLS requested the driver's own socket is kept, unwatched).
 */
function createSilenceWatchdog(silenceMs: number) {
  const watched = new Map<net.Socket, LinkActivity>();
  const cut = (socket: net.Socket, why: string) => {
    watched.delete(socket);
    socket.destroy(Object.assign(new Error(why), { code: 'ETIMEDOUT' }));
  };
  const timer = setInterval(() => {
    const now = Date.now();
    let deadSince = 0;
    for (const [socket, t] of watched) {
      if (t.busy && now - Math.max(t.lastWrite, t.lastData) > silenceMs) {
        deadSince = Math.max(deadSince, t.lastWrite);
        cut(socket, 'the database stopped answering on this connection');
      }
    }
    if (deadSince > 0) dropIdle();
  }, Math.min(1000, silenceMs / 2));
  // The partition that killed one link most likely killed every connection opened before it:
  // drop the idle ones, before a request is sent on each and waits out the silence. Live idle
  // connections are reopened at their next use, in a few milliseconds. A held session (one
  // holding a session advisory lock, see `hold`) is left alone: dropping it on a suspicion would
  // release its lock on the server while its holder goes on working, so another instance could
  // take the lock too. A held session whose link is really dead is cut like any other once
  // something sent on it goes unanswered.
  const held = new Map<number, number>();
  const dropIdle = () => {
    for (const [socket, t] of watched) {
      if (!t.busy && !(t.pid !== null && held.has(t.pid))) cut(socket, 'dropped after a dead connection of the same pool');
    }
  };
  timer.unref();
  return {
    connect(o: { host: string[]; port: number[]; path?: string | false }): net.Socket {
      const socket = o.path ? net.connect(o.path) : net.connect({ host: o.host[0]!, port: o.port[0]! });
      const t = new LinkActivity();
      watched.set(socket, t);
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = ((...args: unknown[]) => {
        t.wrote();
        return write(...args);
      }) as net.Socket['write'];
      socket.on('data', (chunk: Buffer) => t.received(chunk));
      socket.once('close', () => watched.delete(socket));
      return socket;
    },
    dropIdle,
    /**
     * Marks the session of backend `pid` (from `pg_backend_pid()`) as held, so `dropIdle` leaves
     * its connection open; returns the function that ends the hold (holds on one pid nest).
     */
    hold(pid: number): () => void {
      held.set(pid, (held.get(pid) ?? 0) + 1);
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        const n = (held.get(pid) ?? 1) - 1;
        if (n > 0) held.set(pid, n);
        else held.delete(pid);
      };
    },
    stop() {
      clearInterval(timer);
    },
  };
}

let linkEvents = 0;

/**
 * When a connection last wrote, last received, and last received ReadyForQuery ('Z'), found by
 * following the backend's message framing (a type byte and a 32-bit length) across chunks.
 */
class LinkActivity {
  lastWrite = 0;
  lastData = Date.now();
  /** Order of the last write and the last ReadyForQuery (milliseconds can tie). */
  private writeSeq = 0;
  private readySeq = 0;
  private skip = 0;
  private readonly header: number[] = [];
  /** The backend's process id, from its BackendKeyData ('K') at start-up; null before it. */
  pid: number | null = null;
  /** Bytes of a BackendKeyData body still to read into `pidBytes`. */
  private pidPending = 0;
  private readonly pidBytes: number[] = [];

  /** Something was sent that the server has not finished answering (the start-up included). */
  get busy(): boolean {
    return this.writeSeq > this.readySeq;
  }

  wrote(): void {
    this.lastWrite = Date.now();
    this.writeSeq = ++linkEvents;
  }

  received(chunk: Buffer): void {
    const now = Date.now();
    this.lastData = now;
    let i = 0;
    while (i < chunk.length) {
      if (this.pidPending > 0) {
        this.pidBytes.push(chunk[i++]!);
        this.skip--;
        if (--this.pidPending === 0) {
          const [a, b, c, d] = this.pidBytes as [number, number, number, number];
          this.pid = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
        }
        continue;
      }
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      this.header.push(chunk[i++]!);
      if (this.header.length < 5) continue;
      const [type, a, b, c, d] = this.header as [number, number, number, number, number];
      this.header.length = 0;
      this.skip = Math.max(0, ((a << 24) | (b << 16) | (c << 8) | d) - 4);
      if (type === 0x5a) this.readySeq = ++linkEvents; // 'Z'
      else if (type === 0x4b && this.skip >= 4) { // 'K': process id (int32), secret key (int32)
        this.pidBytes.length = 0;
        this.pidPending = 4;
      }
    }
  }
}

/**
 * postgres.js's reconnect delay in seconds after `retries` failed attempts. Its default grows
 * to 10-20 s and is shared by the pool, so an instance stayed down up to 20 s after the
 * database came back; this one grows from 50 ms to at most 500 ms, with jitter so instances
 * do not reconnect in step.
 */
function reconnectDelaySeconds(retries: number): number {
  return Math.min(0.05 * 2 ** retries, 0.5) * (0.5 + Math.random() / 2);
}

/** The query object postgres.js returns: a lazy promise with `cancel()` and, once handed to a connection, `state`. */
type DriverQuery = PromiseLike<unknown> & { cancel(): unknown };

/**
 * Arms the acquire deadline on one statement: if it has not been handed to a connection when
 * the deadline passes (it waits in the driver's queue, or behind a connection still being
 * opened), it is cancelled. postgres.js then removes it from its queue and rejects it with
 * SQLSTATE 57014, so a write the client was already told failed is never run after the
 * database returns. A statement already sent is left alone: its outcome is the server's.
 */
function withdrawIfNotSent(query: DriverQuery, ms: number): void {
  // Weakly held: the query object keeps its result once settled, and a strong reference here
  // kept every result of the last `ms` alive (an export reading 100,000 rows/s held 200,000
  // rows, hundreds of MiB). A query still queued is held by the driver, so it is found.
  const ref = new WeakRef(query);
  setTimeout(() => {
    const q = ref.deref();
    if (q && !Reflect.get(q, 'state')) q.cancel();
  }, ms).unref();
}

/** `promise`, or `DatabaseTimeoutError` after `ms`; a late result is discarded quietly. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  promise.catch(() => {});
  return withTimeout(promise, ms, 'a database connection');
}

/** `client.reserve()` within the deadline; a connection that arrives after it is released at once. */
async function reserveWithin(client: postgres.Sql, ms: number): Promise<postgres.ReservedSql> {
  const reserving = client.reserve();
  try {
    return await within(reserving, ms);
  } catch (err) {
    void reserving.then((late) => late.release(), () => {});
    throw err;
  }
}

/**
 * The client Drizzle is given: postgres.js with the acquire deadline on every statement and
 * transaction (see `DatabaseOptions.acquireTimeoutMs`). A transaction whose BEGIN could not
 * run in time fails with `DatabaseTimeoutError`; if the BEGIN goes through later anyway, its
 * body is never run and it rolls back. Statements inside a transaction hold its connection
 * and are not deadlined.
 */
function withAcquireDeadline(client: postgres.Sql, ms: number): postgres.Sql {
  const unsafe = (...args: Parameters<postgres.Sql['unsafe']>) => {
    const pending = client.unsafe(...args);
    withdrawIfNotSent(pending, ms);
    return pending;
  };
  const begin = (...args: [string, TransactionBody] | [TransactionBody]): Promise<unknown> => {
    const [mode, body] = args.length === 2 ? args : ['', args[0]];
    let late = false;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        late = true;
        reject(new DatabaseTimeoutError('a database connection', ms));
      }, ms);
      timer.unref();
    });
    const run = client.begin(mode, async (tx) => {
      clearTimeout(timer);
      if (late) throw new DatabaseTimeoutError('a database connection', ms);
      return body(tx);
    });
    run.catch(() => {});
    return Promise.race([run, deadline]);
  };
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'unsafe') return unsafe;
      if (prop === 'begin') return begin;
      return Reflect.get(target, prop, receiver);
    },
  });
}

type TransactionBody = (tx: postgres.TransactionSql) => unknown;

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
  // query_canceled: the acquire deadline withdrew the statement (or a statement_timeout fired).
  '57014',
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
