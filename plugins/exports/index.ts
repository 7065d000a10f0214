import { resolve } from 'node:path';
import { sql } from 'drizzle-orm';
import { Counter } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import type { RetentionRegistry } from '../../src/retention.js';
import type { SnapshotRegistry } from '../../src/snapshot.js';
import { createExporter, EXPIRE_JOB, EXPORT_JOB, EXPORT_LEASE_MS, type Exporter } from './jobs.js';
import { exportRoutes, importRoutes } from './routes.js';
import { createExportService, type ExportService } from './service.js';
import { exportJobs } from './table.js';

export interface Exports {
  service: ExportService;
  exporter: Exporter;
  /** The datasets: the kernel's catalogue of time-stamped tables (the registrations retention purges too). */
  datasets: Pick<RetentionRegistry, 'get' | 'list'>;
  /** The control-plane sections of a snapshot (and of an import). */
  snapshots: SnapshotRegistry;
  /** EXPORT_DIR, resolved. */
  dir: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    exports: Exports;
  }
}

const scopes = {
  'exports:read': 'List exports and download their files',
  'exports:write': 'Start and cancel exports (a snapshot import needs admin)',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * UH: exports. A queued job streams a dataset (a table a pack registered with
 * `app.retention.category`) batch by batch to an NDJSON or CSV file under EXPORT_DIR, with
 * progress, size, SHA-256 and an expiry; a periodic job deletes expired files.
 */
export default definePack({
  name: 'exports',
  code: 'UH',
  description: 'Dataset exports (NDJSON, CSV) streamed to files by a queued job, with progress, SHA-256, cancel, download and expiry',
  scopes,
  dependencies: [],
  async register(app) {
    const service = createExportService({ db: app.db });
    const dir = resolve(app.env.EXPORT_DIR);
    const finished = new Counter({ name: 'valhalla_exports_total', help: 'Finished exports by dataset and status', labelNames: ['dataset', 'status'], registers: [app.metrics] });
    const rowsTotal = new Counter({ name: 'valhalla_export_rows_total', help: 'Rows written to export files, by dataset', labelNames: ['dataset'], registers: [app.metrics] });
    // Optional: with the notifications pack loaded, a finished export is an `export.finished` event.
    const notifications = app.hasDecorator('notifications') ? app.notifications : null;
    const exporter = createExporter({
      service,
      db: app.db,
      datasets: app.retention,
      snapshots: app.snapshots,
      dir,
      ttlMs: app.env.EXPORT_TTL_HOURS * 3_600_000,
      batchSize: app.env.EXPORT_BATCH_SIZE,
      heapGrowingPercent: app.env.EXPORT_HEAP_GROWING_PERCENT,
      log: app.log.child({ component: 'exports' }),
      async onFinished({ id, dataset, status, rows, error }) {
        finished.inc({ dataset, status });
        if (status === 'succeeded') rowsTotal.inc({ dataset }, rows);
        // Told after the export's own write (the file exists); a cancelled export was the caller's doing.
        if (status !== 'cancelled' && notifications) {
          await app.db.transaction((tx) =>
            notifications.enqueue(tx, {
              type: 'export.finished',
              payload: { exportId: id, dataset, status, rows, error, summary: `export ${id} of ${dataset} ${status}${status === 'succeeded' ? ` (${rows} rows)` : ''}` },
            }),
          );
        }
      },
    });
    // Failures are recorded on the export itself. A shutdown hands the job back (JobInterrupted, no
    // attempt counted); the short lease, renewed by a heartbeat while it runs, lets another instance
    // take over a dead runner's export within EXPORT_LEASE_MS. A job given up fails its export, so
    // no export stays queued or running with no job left to run it.
    app.jobs.defineQueued<{ exportId: number }>({
      name: EXPORT_JOB,
      maxAttempts: 5,
      leaseMs: EXPORT_LEASE_MS,
      heartbeat: true,
      handler: async ({ exportId }, ctx) => exporter.run(exportId, ctx.signal),
      onDead: async ({ exportId }, error) => exporter.giveUp(exportId, `the export job was given up after its last attempt: ${error}`),
    });
    app.jobs.definePeriodic({ name: EXPIRE_JOB, intervalMs: app.env.EXPORT_EXPIRY_INTERVAL_MS, handler: async () => void (await exporter.expire()) });
    app.retention.category({
      name: 'export_jobs',
      description: 'Finished exports whose file is gone (expired) or never was (failed, cancelled)',
      table: exportJobs,
      idColumn: exportJobs.id,
      timeColumn: exportJobs.createdAt,
      readScope: 'exports:read',
      where: sql`${exportJobs.status} in ('failed', 'cancelled') or ${exportJobs.fileDeletedAt} is not null`,
      defaultRetainDays: 90,
    });
    app.overview.add('exports', () => service.figures());
    app.decorate('exports', { service, exporter, datasets: app.retention, snapshots: app.snapshots, dir });
  },
  routes: async (app) => {
    await app.register(exportRoutes(app.exports));
    await app.register(importRoutes(app.exports));
  },
});
