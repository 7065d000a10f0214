import { definePack } from '../../src/pack.js';
import { collectDefaultMetricsOnce, documentHealthHooks, observeHttpRequests, shedLoadUnderPressure, type RequestTotals } from './hooks.js';
import { batchWritersPending, createFiguresCollector, defineSnapshotJob } from './jobs.js';
import { defineAuditChainVerification, defineJobFigures, readinessGauges } from './gauges.js';
import { healthRoutes } from './routes.js';
import { createReadiness, createSnapshotStore, type HealthReportDeps, type Readiness, type SnapshotStore } from './service.js';
import { metricsSnapshots } from './table.js';

/**
 * TX: health, readiness and metrics. `/live` (process up), `/ready` (database, migrations,
 * draining, pressure), `/metrics` (Prometheus: default metrics, request durations by route
 * template, and every pack's counters on `app.metrics`), load shedding with
 * @fastify/under-pressure, `/system/health` and periodic `metrics_snapshots`.
 */
export default definePack({
  name: 'health',
  code: 'TX',
  description: 'Liveness, readiness, Prometheus metrics, load shedding, detailed health and metrics snapshots',
  async register(app) {
    const env = app.env;
    collectDefaultMetricsOnce(app.metrics);
    const totals = observeHttpRequests(app);
    const pressure = await shedLoadUnderPressure(app, env);
    documentHealthHooks(app, env);
    const readiness = createReadiness({
      database: app.database,
      timeoutMs: env.READY_DB_TIMEOUT_MS,
      isDraining: () => app.lifecycle.draining,
      pressure,
      stateListener: () => app.stateCache.listenerStatus(),
    });
    const snapshots = createSnapshotStore({ db: app.db });
    const figures = createFiguresCollector({ totals, registry: app.metrics });
    defineSnapshotJob({ jobs: app.jobs, store: snapshots, figures, instanceId: app.lifecycle.instanceId, intervalMs: env.METRICS_SNAPSHOT_INTERVAL_MS });
    app.addHook('onClose', async () => figures.stop());

    // Gauges read from the database, refreshed on their own clocks (never by a scrape). Readiness
    // is every instance's own, so a timer checks it whether this instance runs jobs or not.
    readinessGauges({ registry: app.metrics, readiness });
    let readinessTimer: NodeJS.Timeout | undefined;
    app.addHook('onReady', async () => {
      const refresh = () => void readiness.checks().catch(() => {}); // checks() reports failures as failing checks
      refresh();
      readinessTimer = setInterval(refresh, env.METRICS_REFRESH_INTERVAL_MS);
      readinessTimer.unref();
    });
    app.addHook('onClose', async () => clearInterval(readinessTimer));
    defineJobFigures({ registry: app.metrics, jobs: app.jobs, intervalMs: env.METRICS_REFRESH_INTERVAL_MS });
    if (env.AUDIT_VERIFY_INTERVAL_MS > 0) defineAuditChainVerification({ registry: app.metrics, jobs: app.jobs, db: app.db, intervalMs: env.AUDIT_VERIFY_INTERVAL_MS });

    const report: HealthReportDeps = {
      readiness,
      pressure,
      lifecycle: app.lifecycle,
      driver: app.database.driver,
      jobs: app.jobs,
      stateCacheNames: () => app.stateCache.names(),
      stateListener: () => app.stateCache.listenerStatus(),
      batchWriters: () => batchWritersPending(app.metrics),
      packs: app.packs,
    };
    app.retention.category({ name: 'metrics_snapshots', description: 'Periodic snapshots of key figures per instance', table: metricsSnapshots, idColumn: metricsSnapshots.id, timeColumn: metricsSnapshots.takenAt, readScope: 'system:read', defaultRetainDays: 30 });
    app.decorate('health', { readiness, report, snapshots, requestTotals: totals });
  },
  routes: async (app) => {
    await app.register(
      healthRoutes({ report: app.health.report, snapshots: app.health.snapshots, registry: app.metrics, metricsToken: app.env.METRICS_TOKEN }),
    );
  },
});

declare module 'fastify' {
  interface FastifyInstance {
    /** TX's services, for packs that report on the instance (e.g. the admin overview). */
    health: {
      readiness: Readiness;
      report: HealthReportDeps;
      snapshots: SnapshotStore;
      requestTotals: Readonly<RequestTotals>;
    };
  }
}
