import { Counter, Histogram } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import { createSmokeRunExecutor, SMOKE_RUN_JOB, type SmokeFailedListener, type SmokeRunExecutor } from './jobs.js';
import { deploymentRoutes } from './routes.js';
import { MAX_CHECKS, MAX_TIMEOUT_MS } from './schemas.js';
import { createDeploymentService, type DeploymentService } from './service.js';
import { smokeTestResults } from './table.js';

export type { SmokeFailure, SmokeFailedListener } from './jobs.js';

/** What this pack offers other packs (`app.deployments`); the notifications pack (UG) uses `onSmokeFailed`. */
export interface Deployments {
  service: DeploymentService;
  executor: SmokeRunExecutor;
  /** Called after a smoke run finishes `failed` or `error` (after its results are stored); returns the unsubscribe function. */
  onSmokeFailed(listener: SmokeFailedListener): () => void;
}

declare module 'fastify' {
  interface FastifyInstance {
    deployments: Deployments;
  }
}

/** The scopes this pack's routes require; API keys can hold them while the pack is loaded. */
const scopes = {
  'deployments:read': 'Read deployment profiles, deployments and smoke runs',
  'deployments:write': 'Change deployment profiles, record deployments, start smoke runs',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * UB: deployment profiles (one service in one environment, with its smoke checks), the history of
 * recorded deployments, and smoke runs that call the configured endpoints over real HTTP. A run
 * is a queued job (`deployments:smoke-run`), so a worker can execute it; `?wait=true` executes
 * it in the request instead, bounded, to answer with the verdict.
 */
/** Periodic job ending runs whose executor is gone (see `endAbandonedRuns`). */
export const ABANDONED_RUNS_JOB = 'deployments:end-abandoned-runs';
/** A claim this long past its end means no executor will finish the run. */
const ABANDONED_GRACE_MS = 60_000;

export default definePack({
  name: 'deployments',
  code: 'UB',
  description: 'Deployment profiles, deployment history and HTTP smoke runs with per-check results',
  scopes,
  dependencies: [],
  async register(app) {
    const service = createDeploymentService({ db: app.db });

    const runsTotal = new Counter({
      name: 'valhalla_smoke_runs_total',
      help: 'Finished smoke runs by verdict (passed, failed, error)',
      labelNames: ['verdict'],
      registers: [app.metrics],
    });
    const checkDuration = new Histogram({
      name: 'valhalla_smoke_check_duration_seconds',
      help: 'Time each smoke check took, from sending the request to the end of the body read (or the failure)',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [app.metrics],
    });
    const sinceStart = { passed: 0, failed: 0, error: 0 };

    // Tracing is optional: without it each check still sends a fresh W3C traceparent.
    const executor = createSmokeRunExecutor({
      service,
      tracing: app.hasDecorator('tracing') ? app.tracing : null,
      userAgent: `valhalla-smoke/${app.lifecycle.version}`,
      log: app.log.child({ component: 'smoke-runs' }),
      onFinished(run, results) {
        if (run.status === 'passed' || run.status === 'failed' || run.status === 'error') {
          runsTotal.inc({ verdict: run.status });
          sinceStart[run.status]++;
        }
        for (const r of results) checkDuration.observe({ outcome: r.passed ? 'passed' : 'failed' }, r.latencyMs / 1000);
      },
    });

    app.jobs.defineQueued<{ runId: number }>({
      name: SMOKE_RUN_JOB,
      maxAttempts: 3,
      // Longer than the slowest possible run: every check alone, each waiting its full timeout.
      leaseMs: MAX_CHECKS * MAX_TIMEOUT_MS + 60_000,
      handler: async ({ runId }, ctx) => {
        // Failing (not succeeding) leaves the job to be retried, by another instance if this one is stopping.
        if (executor.closed) throw new Error('instance shutting down; smoke run left for a retry');
        await executor.execute(runId, ctx.signal);
      },
    });

    // A run left `running` after its claim ran out (executor died, or its verdict could not be
    // written during a database outage) would stay so forever: end it as an error.
    app.jobs.definePeriodic({
      name: ABANDONED_RUNS_JOB,
      intervalMs: 60_000,
      async handler() {
        const ended = await service.endAbandonedRuns(ABANDONED_GRACE_MS);
        if (ended.length) app.log.warn({ pack: 'deployments', runs: ended }, 'smoke runs abandoned by their executor ended as errors');
      },
    });

    app.overview.add('deployments', async () => ({ ...(await service.figures()), runsSinceStart: { ...sinceStart } }));
    // Before the HTTP server drains: a `?wait=true` request then answers at once instead of
    // holding shutdown for up to 30 s; its run ends as an error ('interrupted by shutdown').
    app.addHook('preClose', async () => executor.close());

    app.retention.category({ name: 'smoke_test_results', description: 'Per-check results of smoke runs (the runs themselves stay)', table: smokeTestResults, idColumn: smokeTestResults.id, timeColumn: smokeTestResults.createdAt, defaultRetainDays: 90 });
    app.decorate('deployments', { service, executor, onSmokeFailed: (listener: SmokeFailedListener) => executor.onSmokeFailed(listener) });
  },
  routes: async (app) => {
    await app.register(deploymentRoutes(app.deployments));
  },
});
