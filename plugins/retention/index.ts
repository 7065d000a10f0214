import { Counter } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import type { RetentionRegistry } from '../../src/retention.js';
import { createPurgeRunner, PURGE_JOB, type PurgeRunner } from './jobs.js';
import { retentionRoutes } from './routes.js';
import { createRetentionService, type RetentionService } from './service.js';
import { policySnapshotSection } from './snapshot.js';

/** What this pack offers (`app.retentionPolicies`); categories are registered on the kernel's `app.retention`. */
export interface Retention {
  service: RetentionService;
  runner: PurgeRunner;
  registry: RetentionRegistry;
}

declare module 'fastify' {
  interface FastifyInstance {
    retentionPolicies: Retention;
  }
}

const scopes = {
  'retention:read': 'Read retention policies, categories and purge results',
  'retention:write': 'Change retention policies and run purges',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

const SYSTEM_ACTOR = { type: 'system' as const, id: 'retention', keyId: null };

/**
 * UI: data retention. One policy per purgeable category (a table with a time column that a pack
 * or the kernel registered with `app.retention.category`); a periodic job, on one instance at a
 * time, purges each enabled category in short batched transactions; the audit trail has a floor
 * and is purged oldest first with its hash chain re-anchored, so verification still passes.
 */
export default definePack({
  name: 'retention',
  code: 'UI',
  description: 'Data retention policies per category with batched periodic purges, dry runs and an audit-trail floor',
  scopes,
  dependencies: [],
  async register(app) {
    const registry = app.retention;
    const service = createRetentionService({ db: app.db, registry });
    const purged = new Counter({ name: 'valhalla_retention_purged_rows_total', help: 'Rows deleted by retention purges, by category', labelNames: ['category'], registers: [app.metrics] });
    const runs = new Counter({ name: 'valhalla_retention_runs_total', help: 'Retention purge runs by category and status (complete, partial, failed)', labelNames: ['category', 'status'], registers: [app.metrics] });
    const runner = createPurgeRunner({
      service,
      database: app.database,
      options: { batchSize: app.env.RETENTION_BATCH_SIZE, pauseMs: app.env.RETENTION_BATCH_PAUSE_MS, budgetMs: app.env.RETENTION_RUN_BUDGET_MS },
      log: app.log.child({ component: 'retention' }),
      onBatch: (category, n) => purged.inc({ category }, n),
      onRun: (category, status) => runs.inc({ category, status }),
    });

    // Periodic jobs run on one instance at a time (advisory lock + schedule row).
    app.jobs.definePeriodic({
      name: PURGE_JOB,
      intervalMs: app.env.RETENTION_INTERVAL_MS,
      handler: async (ctx) => void (await runner.runAll((tx, entry) => app.audit.record(tx, null, { ...entry, actor: SYSTEM_ACTOR }), ctx.signal)),
    });
    app.overview.add('retention', () => service.figures());
    app.snapshots.section(policySnapshotSection(service));
    app.decorate('retentionPolicies', { service, runner, registry });
  },
  routes: async (app) => {
    await app.register(retentionRoutes(app.retentionPolicies));
  },
});
