import { and, desc, eq, gte, lt, lte, type SQL } from 'drizzle-orm';
import { DatabaseTimeoutError, pgErrorCode, withTimeout, type Database, type Db } from '../../db/client.js';
import { migrationStatus } from '../../db/migrate.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import type { ListenerStatus } from '../../src/state-cache.js';
import type { Check, Health, SnapshotFigures } from './schemas.js';
import { metricsSnapshots } from './table.js';

export interface PressureState {
  underPressure: boolean;
  eventLoopDelayMs: number;
  heapUsedBytes: number;
  rssBytes: number;
}

export interface ReadinessDeps {
  database: Pick<Database, 'ping' | 'db'>;
  timeoutMs: number;
  isDraining: () => boolean;
  pressure: () => PressureState;
  /** Whether the state cache hears other instances' changes (src/state-cache.ts). */
  stateListener?: () => Pick<ListenerStatus, 'state' | 'since' | 'reason'>;
  migrationStatus?: (db: Db) => Promise<{ expected: number; applied: number }>;
}

export interface MigrationCheck extends Check {
  expected: number | null;
  applied: number | null;
}

const elapsedMs = (start: bigint): number => Math.round(Number(process.hrtime.bigint() - start) / 10_000) / 100;

/**
 * Why the database did not answer, without the driver's message: /ready is public and a
 * connection error names hosts and ports.
 */
function databaseFailure(err: unknown): string {
  if (err instanceof DatabaseTimeoutError) return err.message;
  const code = pgErrorCode(err);
  return code ? `unreachable (${code})` : 'unreachable';
}

/**
 * The readiness checks behind /ready and /system/health: the database answers within the
 * timeout, migrations are applied, the instance is not draining and not shedding load.
 * Concurrent probes share one database ping, and the migration check stops querying once it
 * has seen every migration applied (they cannot be unapplied while the process runs).
 */
export function createReadiness(deps: ReadinessDeps) {
  const status = deps.migrationStatus ?? migrationStatus;
  let pingInFlight: Promise<Check> | undefined;
  let migrationsApplied: { expected: number; applied: number } | undefined;
  let lastDatabaseChecks: Check[] | undefined;

  function database(): Promise<Check> {
    pingInFlight ??= (async (): Promise<Check> => {
      const start = process.hrtime.bigint();
      try {
        await deps.database.ping(deps.timeoutMs);
        return { name: 'database', ok: true, latencyMs: elapsedMs(start), message: 'answered' };
      } catch (err) {
        return { name: 'database', ok: false, latencyMs: elapsedMs(start), message: databaseFailure(err) };
      }
    })().finally(() => {
      pingInFlight = undefined;
    });
    return pingInFlight;
  }

  async function migrations(databaseOk: boolean): Promise<MigrationCheck> {
    const done = migrationsApplied;
    if (done) return { name: 'migrations', ok: true, message: `${done.applied} of ${done.expected} applied`, ...done };
    if (!databaseOk) return { name: 'migrations', ok: false, expected: null, applied: null, message: 'not checked: the database is unavailable' };
    try {
      const s = await withTimeout(status(deps.database.db), deps.timeoutMs, 'migration status');
      if (s.applied >= s.expected) migrationsApplied = s;
      return { name: 'migrations', ok: s.applied >= s.expected, message: `${s.applied} of ${s.expected} applied`, ...s };
    } catch (err) {
      return { name: 'migrations', ok: false, expected: null, applied: null, message: `not checked: ${databaseFailure(err)}` };
    }
  }

  function draining(): Check {
    return deps.isDraining()
      ? { name: 'draining', ok: false, message: 'the instance is shutting down' }
      : { name: 'draining', ok: true, message: 'serving' };
  }

  function pressure(): Check {
    const p = deps.pressure();
    const figures = `event-loop delay ${Math.round(p.eventLoopDelayMs)} ms, heap ${p.heapUsedBytes} B, rss ${p.rssBytes} B`;
    return { name: 'pressure', ok: !p.underPressure, message: p.underPressure ? `shedding load: ${figures}` : figures };
  }

  // An instance that cannot hear changes may keep serving a revoked key or a flipped flag until
  // the periodic reload: it leaves the load balancer's rotation until it is listening again.
  function stateListener(): Check {
    const l = deps.stateListener?.();
    if (!l || l.state === 'listening') return { name: 'state-listener', ok: true, message: 'listening for changes' };
    return { name: 'state-listener', ok: false, message: `${l.state} since ${l.since}${l.reason ? `: ${l.reason}` : ''}` };
  }

  return {
    database,
    migrations,
    draining,
    pressure,
    stateListener,
    /** Every check, in a fixed order; the migration check waits for the database one. */
    async checks(): Promise<{ ready: boolean; checks: Check[] }> {
      const db = await database();
      const { expected: _e, applied: _a, ...mig } = await migrations(db.ok);
      lastDatabaseChecks = [db, mig];
      const checks = [db, mig, stateListener(), draining(), pressure()];
      return { ready: checks.every((c) => c.ok), checks };
    },
    /**
     * The checks as of now without a database round trip (for the `valhalla_ready` gauge): the
     * database and migration results of the last `checks()`, the others read from memory.
     * Undefined until a first `checks()` has finished.
     */
    lastKnown(): { ready: boolean; checks: Check[] } | undefined {
      if (!lastDatabaseChecks) return undefined;
      const checks = [...lastDatabaseChecks, stateListener(), draining(), pressure()];
      return { ready: checks.every((c) => c.ok), checks };
    },
  };
}
export type Readiness = ReturnType<typeof createReadiness>;

/** `Not ready: database (did not answer within 300 ms); draining (the instance is shutting down)`. */
export const notReadyDetail = (checks: Check[]): string =>
  `Not ready: ${checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name} (${c.message})`)
    .join('; ')}`;

export type SnapshotRow = typeof metricsSnapshots.$inferSelect;

export interface SnapshotFilter {
  instanceId?: string;
  since?: string;
  until?: string;
  limit: number;
  cursor?: string;
}

export function createSnapshotStore(deps: { db: Db }) {
  return {
    async insert(instanceId: string, figures: SnapshotFigures): Promise<number> {
      const [row] = await deps.db.insert(metricsSnapshots).values({ instanceId, figures }).returning({ id: metricsSnapshots.id });
      return row!.id;
    },
    /** Newest first, keyset on id (ids follow `taken_at`). */
    async list(f: SnapshotFilter): Promise<Page<SnapshotRow>> {
      const where: SQL[] = [];
      if (f.instanceId) where.push(eq(metricsSnapshots.instanceId, f.instanceId));
      if (f.since) where.push(gte(metricsSnapshots.takenAt, new Date(f.since)));
      if (f.until) where.push(lte(metricsSnapshots.takenAt, new Date(f.until)));
      const afterId = decodeIdCursor(f.cursor);
      if (afterId !== undefined) where.push(lt(metricsSnapshots.id, afterId));
      const rows = await deps.db
        .select()
        .from(metricsSnapshots)
        .where(where.length ? and(...where) : undefined)
        .orderBy(desc(metricsSnapshots.id))
        .limit(f.limit + 1);
      return toPage(rows, f.limit, (r) => [r.id], (r) => r);
    },
  };
}
export type SnapshotStore = ReturnType<typeof createSnapshotStore>;

export interface HealthReportDeps {
  readiness: Readiness;
  pressure: () => PressureState;
  lifecycle: { instanceId: string; version: string; startedAt: Date; draining: boolean };
  driver: 'pglite' | 'postgres';
  jobs: { running: boolean; definitions: { queued: string[]; periodic: string[] } };
  stateCacheNames: () => string[];
  stateListener: () => ListenerStatus;
  batchWriters: () => Promise<Array<{ name: string; pending: number }>>;
  packs: ReadonlyArray<{ name: string; code: string; description: string }>;
}

/** The detailed view behind /system/health: every component, `degraded` when any is not ok. */
export async function healthReport(deps: HealthReportDeps): Promise<Health> {
  const database = await deps.readiness.database();
  const migrations = await deps.readiness.migrations(database.ok);
  const pressure = deps.pressure();
  const writers = await deps.batchWriters();
  const names = deps.stateCacheNames();
  const { lifecycle } = deps;
  const listener = deps.stateListener();
  const ok = database.ok && migrations.ok && listener.state === 'listening' && !pressure.underPressure && !lifecycle.draining;
  return {
    status: ok ? 'ok' : 'degraded',
    version: lifecycle.version,
    instanceId: lifecycle.instanceId,
    startedAt: lifecycle.startedAt.toISOString(),
    uptimeSeconds: Math.round((Date.now() - lifecycle.startedAt.getTime()) / 1000),
    driver: deps.driver,
    draining: lifecycle.draining,
    components: {
      database: { ok: database.ok, latencyMs: database.latencyMs ?? 0, message: database.message },
      migrations: { ok: migrations.ok, expected: migrations.expected, applied: migrations.applied, message: migrations.message },
      pressure: {
        ok: !pressure.underPressure,
        // under-pressure reports an interval without a sample as Infinity, which JSON cannot hold.
        eventLoopDelayMs: Number.isFinite(pressure.eventLoopDelayMs) ? Math.round(pressure.eventLoopDelayMs * 100) / 100 : null,
        heapUsedBytes: pressure.heapUsedBytes,
        rssBytes: pressure.rssBytes,
      },
      jobs: { running: deps.jobs.running, queued: deps.jobs.definitions.queued, periodic: deps.jobs.definitions.periodic },
      stateCache: { entries: names.length, names, listener },
      batchWriters: { pending: writers.reduce((sum, w) => sum + w.pending, 0), writers },
    },
    packs: deps.packs.map((p) => ({ name: p.name, code: p.code, description: p.description })),
  };
}
