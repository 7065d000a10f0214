import type { FastifyContextConfig, FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Database, Db, DbOrTx } from '../db/client.js';
import { sql } from 'drizzle-orm';
import { adminOperations } from './audit/table.js';
import { ANONYMOUS_ACTOR, countPurgeableAudit, purgeAuditBatch, recordAudit, type Actor, type AuditEntry } from './audit/writer.js';
import { createBatchWriter, type BatchWriter, type BatchWriterOptions } from './batch-writer.js';
import type { Env } from './env.js';
import { createJobRunner, type JobRunner } from './jobs/runner.js';
import { jobQueue } from './jobs/table.js';
import { createRetentionRegistry, type RetentionRegistry } from './retention.js';
import { createSnapshotRegistry, type SnapshotRegistry } from './snapshot.js';
import type { Pack } from './pack.js';
import { createApiDocs, type ApiDocs } from './api-docs.js';
import { createScopeCatalog, type ScopeCatalog } from './access.js';
import { createStateCache, type StateCache } from './state-cache.js';
import { createWriteThrough, type WriteThrough } from './write-through.js';

export interface Lifecycle {
  readonly instanceId: string;
  readonly version: string;
  readonly startedAt: Date;
  /** True from the first shutdown signal: readiness fails and responses carry `Connection: close`. */
  draining: boolean;
}

export interface Audit {
  /** Records an audit entry inside `tx`, with the request's actor and correlation id. */
  record(tx: DbOrTx, request: FastifyRequest | null, entry: Omit<AuditEntry, 'actor' | 'correlationId'> & { actor?: Actor }): Promise<{ id: number; hash: string }>;
}

/** One registered route, as the route index and the access checks see it. */
export interface RouteEntry {
  method: string;
  url: string;
  pack: string | null;
  scope: string | null;
  public: boolean;
  summary: string | null;
  tags: string[];
  /** The route's whole `config` (`shield`, `freeze`, `rateLimit`, ...), for packs that report on routes. */
  config: Readonly<FastifyContextConfig>;
}

/**
 * Sections of the admin overview (`GET /system/admin`): each pack adds what an operator should
 * see at a glance (counts, backlogs, current mode) without the admin pack reading its tables.
 */
export interface Overview {
  /** Adds a section; `read` should be cheap (memory, or one indexed count). */
  add(section: string, read: () => unknown): void;
  /** Every section's current figures; a section that fails reports `{ error }` instead. */
  read(): Promise<Record<string, unknown>>;
}

export interface BatchWriters {
  create<T>(opts: Omit<BatchWriterOptions<T>, 'log' | 'intervalMs' | 'maxQueue' | 'onDrop'> & Partial<Pick<BatchWriterOptions<T>, 'intervalMs' | 'maxQueue'>>): BatchWriter<T>;
  flushAll(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    env: Env;
    database: Database;
    db: Db;
    lifecycle: Lifecycle;
    stateCache: StateCache;
    jobs: JobRunner;
    metrics: Registry;
    audit: Audit;
    /** A control-plane write: transaction, audit entries, state notification and local reload in one call (src/write-through.ts). */
    writeThrough: WriteThrough;
    batchWriters: BatchWriters;
    overview: Overview;
    packs: ReadonlyArray<Pack['meta']>;
    /** Every route registered after the kernel (all packs' routes), in registration order. */
    routeCatalog: ReadonlyArray<RouteEntry>;
    /** What request hooks add to the OpenAPI document of every route (src/api-docs.ts). */
    apiDocs: ApiDocs;
    /** The kernel's scopes and those the loaded packs declare. */
    scopes: ScopeCatalog;
    /** The purgeable categories (tables with a time column) packs register for the retention pack. */
    retention: RetentionRegistry;
    /** The control-plane sections packs register for snapshot exports and imports. */
    snapshots: SnapshotRegistry;
  }
  interface FastifyRequest {
    /** Who is calling; null until an authentication pack sets it (audit records it as anonymous). */
    actor: Actor | null;
  }
}

export interface KernelOptions {
  env: Env;
  database: Database;
  ownsDatabase: boolean;
  lifecycle: Lifecycle;
  packs: ReadonlyArray<Pack['meta']>;
}

/**
 * The kernel's shared services, decorated once for every pack: database, state cache, job
 * runner, metrics registry, audit writer and batching writers, with their start and stop tied
 * to the instance's lifecycle.
 */
export default fp(
  async function kernel(app: FastifyInstance, opts: KernelOptions) {
    const { env, database, lifecycle } = opts;
    // No label on every series: Prometheus adds `instance` (the scrape target) itself, and a
    // second one of ours would be renamed `exported_instance`. Who this process is lives on one
    // info metric instead, joined in queries when needed (`* on(instance) group_left(instance_id)`).
    const metrics = new Registry();
    new Gauge({
      name: 'valhalla_build_info',
      help: 'Always 1; the labels say which kernel version, instance and runtime this process is',
      labelNames: ['version', 'instance_id', 'node_version', 'driver'],
      registers: [metrics],
    }).set({ version: lifecycle.version, instance_id: lifecycle.instanceId, node_version: process.version, driver: database.driver }, 1);

    const resubscribes = new Counter({
      name: 'valhalla_state_listener_resubscribes_total',
      help: 'Times the state cache re-subscribed to change notifications (and reloaded all state), by reason',
      labelNames: ['reason'],
      registers: [metrics],
    });
    const stateCache = createStateCache(database, app.log.child({ component: 'state-cache' }), env.STATE_RELOAD_INTERVAL_MS, {
      onResubscribe: (reason) => resubscribes.inc({ reason }),
    });
    new Gauge({
      name: 'valhalla_state_listener_up',
      help: '1 while this instance hears change notifications from the others (verified by heartbeat on PostgreSQL), else 0',
      registers: [metrics],
      collect() {
        this.set(stateCache.listenerStatus().state === 'listening' ? 1 : 0);
      },
    });

    const jobOutcomes = new Counter({
      name: 'valhalla_jobs_total',
      help: 'Background job runs by job and outcome',
      labelNames: ['job', 'outcome'],
      registers: [metrics],
    });
    const jobs = createJobRunner({
      database,
      log: app.log.child({ component: 'jobs' }),
      instanceId: lifecycle.instanceId,
      pollIntervalMs: env.JOB_POLL_INTERVAL_MS,
      onOutcome: (job, outcome) => jobOutcomes.inc({ job, outcome }),
    });

    const writers: BatchWriter<unknown>[] = [];
    const dropped = new Counter({
      name: 'valhalla_batch_dropped_total',
      help: 'Rows dropped by a batching writer because its queue was full (database unavailable for long)',
      labelNames: ['writer'],
      registers: [metrics],
    });
    const writerNames: string[] = [];
    new Gauge({
      name: 'valhalla_batch_pending',
      help: 'Rows waiting in a batching writer',
      labelNames: ['writer'],
      registers: [metrics],
      collect() {
        writers.forEach((w, i) => this.set({ writer: writerNames[i]! }, w.pending));
      },
    });
    const batchWriters: BatchWriters = {
      create(o) {
        const writer = createBatchWriter({
          intervalMs: env.BATCH_FLUSH_INTERVAL_MS,
          maxQueue: env.BATCH_MAX_QUEUE,
          ...o,
          log: app.log.child({ component: 'batch-writer' }),
          onDrop: (n) => dropped.inc({ writer: o.name }, n),
        });
        writers.push(writer as BatchWriter<unknown>);
        writerNames.push(o.name);
        return writer;
      },
      async flushAll() {
        await Promise.all(writers.map((w) => w.flush()));
      },
    };

    const audit: Audit = {
      record(tx, request, entry) {
        return recordAudit(tx, {
          ...entry,
          actor: entry.actor ?? request?.actor ?? ANONYMOUS_ACTOR,
          correlationId: request?.id ?? null,
        });
      },
    };

    app.decorate('env', env);
    app.decorate('database', database);
    app.decorate('db', database.db);
    app.decorate('lifecycle', lifecycle);
    app.decorate('stateCache', stateCache);
    app.decorate('jobs', jobs);
    app.decorate('metrics', metrics);
    app.decorate('audit', audit);
    app.decorate('writeThrough', createWriteThrough({ db: database.db, audit, stateCache }));
    app.decorate('batchWriters', batchWriters);
    const overview = createOverview();
    overview.add('jobs', () => jobs.backlog());
    overview.add('batchWriters', () => ({
      pending: writers.reduce((sum, w) => sum + w.pending, 0),
      writers: writers.map((w, i) => ({ name: writerNames[i]!, pending: w.pending })),
    }));
    app.decorate('overview', overview);
    const retention = createRetentionRegistry();
    retention.category({
      name: 'admin_operations',
      description: 'The audit trail; purged oldest first, the hash chain re-anchored so it still verifies',
      table: adminOperations,
      idColumn: adminOperations.id,
      timeColumn: adminOperations.occurredAt,
      readScope: 'audit:read',
      defaultRetainDays: Math.max(env.AUDIT_RETENTION_FLOOR_DAYS, 365),
      minRetainDays: env.AUDIT_RETENTION_FLOOR_DAYS,
      purgeBatch: purgeAuditBatch,
      countEligible: countPurgeableAudit,
    });
    retention.category({
      name: 'job_queue',
      description: 'Finished background jobs (succeeded or dead); queued and running ones never go',
      table: jobQueue,
      idColumn: jobQueue.id,
      timeColumn: jobQueue.finishedAt,
      readScope: 'system:read',
      where: sql`${jobQueue.status} in ('succeeded', 'dead')`,
      defaultRetainDays: 14,
    });
    app.decorate('retention', retention);
    app.decorate('snapshots', createSnapshotRegistry());
    app.decorate('packs', opts.packs);
    app.decorate('apiDocs', createApiDocs());
    const scopes = createScopeCatalog(opts.packs);
    app.decorate('scopes', scopes);
    app.decorateRequest('actor', null);
    app.decorateRequest('caller', null);
    app.decorateRequest('routeConfig', null);
    // The kernel's hooks run before every pack's: cache the route config once per request.
    app.addHook('onRequest', (request, _reply, done) => {
      request.routeConfig = request.routeOptions.config;
      done();
    });

    // Route options are collected as registered and read once everything is loaded: a pack's own
    // onRoute hook (which stamps `config.pack`) runs after this root-level one.
    const routeCatalog: RouteEntry[] = [];
    const registered: RouteOptions[] = [];
    app.decorate('routeCatalog', routeCatalog);
    app.addHook('onRoute', (route) => {
      registered.push(route);
    });
    app.addHook('onReady', async () => {
      for (const route of registered) {
        const schema = route.schema as { summary?: string; tags?: string[] } | undefined;
        for (const method of [route.method].flat()) {
          routeCatalog.push({
            method: String(method).toUpperCase(),
            url: route.url,
            pack: route.config?.pack ?? null,
            scope: route.config?.scope ?? null,
            public: route.config?.public === true,
            summary: schema?.summary ?? null,
            tags: schema?.tags ?? [],
            config: route.config ?? {},
          });
        }
      }
      registered.length = 0;
      assertEveryRouteGuarded(routeCatalog, scopes);
    });

    // Echo the correlation id; while draining, close each connection after its response so
    // idle keep-alive clients cannot hold shutdown open for keepAliveTimeout (72 s).
    app.addHook('onSend', (request, reply, payload, done) => {
      reply.header('x-request-id', request.id);
      if (lifecycle.draining) reply.header('connection', 'close');
      done(null, payload);
    });

    app.addHook('onReady', async () => {
      await stateCache.start();
      if (env.RUN_JOBS) jobs.start();
    });

    app.addHook('preClose', async () => {
      lifecycle.draining = true;
    });

    // Runs after the HTTP server has drained (Fastify closes the server first) and after the
    // packs' own onClose hooks: stop jobs, flush batched writes, then close the database.
    app.addHook('onClose', async () => {
      await jobs.stop();
      await Promise.all(writers.map((w) => w.close()));
      await stateCache.stop();
      if (opts.ownsDatabase) await database.close();
    });
  },
  { name: 'kernel', fastify: '5.x' },
);

function createOverview(): Overview {
  const sections = new Map<string, () => unknown>();
  return {
    add(section, read) {
      if (sections.has(section)) throw new Error(`overview section '${section}' is added twice`);
      sections.set(section, read);
    },
    async read() {
      const out: Record<string, unknown> = {};
      await Promise.all(
        [...sections].map(async ([name, read]) => {
          try {
            out[name] = await read();
          } catch {
            out[name] = { error: 'unavailable' };
          }
        }),
      );
      return out;
    },
  };
}

/**
 * A route that declares neither a scope nor `public: true` stops the start-up, so no route is
 * open by accident; so does a scope no loaded pack declares (a typo would lock everyone out).
 */
function assertEveryRouteGuarded(routes: ReadonlyArray<RouteEntry>, scopes: ScopeCatalog): void {
  const problems: string[] = [];
  for (const r of routes) {
    if (r.method === 'HEAD' && routes.some((g) => g.method === 'GET' && g.url === r.url)) continue;
    if (r.public && r.scope) problems.push(`${r.method} ${r.url} is public but also declares scope '${r.scope}'`);
    else if (!r.public && !r.scope) problems.push(`${r.method} ${r.url} declares neither config.scope nor config.public`);
    else if (r.scope && !scopes.has(r.scope)) {
      problems.push(`${r.method} ${r.url} declares unknown scope '${r.scope}': neither the kernel nor a loaded pack declares it (definePack({ scopes }))`);
    }
  }
  if (problems.length) throw new Error(`unguarded routes:\n  ${problems.join('\n  ')}`);
}
