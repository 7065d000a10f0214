import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Registry } from 'prom-client';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemResponses } from '../../src/problem.js';
import { bearerMatches, letThroughUnderPressure } from './hooks.js';
import {
  HealthQuerySchema,
  InfoSchema,
  HealthSchema,
  LiveSchema,
  MetricsTextSchema,
  ReadyQuerySchema,
  ReadySchema,
  SnapshotQuerySchema,
  SnapshotSchema,
  type SnapshotFigures,
} from './schemas.js';
import { healthReport, notReadyDetail, type HealthReportDeps, type SnapshotRow, type SnapshotStore } from './service.js';

export interface HealthRoutesDeps {
  report: HealthReportDeps;
  snapshots: SnapshotStore;
  registry: Registry;
  metricsToken: string | undefined;
}

const toApi = (row: SnapshotRow) => ({
  id: row.id,
  takenAt: row.takenAt.toISOString(),
  instanceId: row.instanceId,
  figures: (row.figures ?? {}) as Partial<SnapshotFigures>,
});

// Probes are public, never traced and never rate-limited (`rateLimit: false`, @fastify/rate-limit's
// convention): a load balancer or Prometheus polling them must not be answered 429.
export const healthRoutes =
  (deps: HealthRoutesDeps): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { readiness } = deps.report;

    app.get(
      '/live',
      {
        config: { public: true, trace: false, rateLimit: false, pressureHandler: letThroughUnderPressure },
        schema: {
          tags: ['health'],
          summary: 'Liveness: 200 while the process runs (never touches the database)',
          response: { 200: LiveSchema },
        },
      },
      async () => ({ status: 'ok' as const }),
    );

    app.get(
      '/ready',
      {
        // Let through under pressure so the answer can name the pressure check.
        config: { public: true, trace: false, rateLimit: false, pressureHandler: letThroughUnderPressure },
        schema: {
          tags: ['health'],
          summary: 'Readiness: database answers, migrations applied, not draining, not under pressure',
          description: 'A 503 problem names each failing check; `?verbose` lists every check with its latency and message.',
          querystring: ReadyQuerySchema,
          response: { 200: ReadySchema, ...problemResponses(400, 503) },
        },
      },
      async (request, reply) => {
        const v = request.query.verbose;
        const verbose = v !== undefined && v !== 'false' && v !== '0';
        const { ready, checks } = await readiness.checks();
        if (!ready) {
          return reply.problem('service-unavailable', { detail: notReadyDetail(checks), extensions: verbose ? { checks } : undefined });
        }
        return verbose ? { status: 'ok' as const, checks } : { status: 'ok' as const };
      },
    );

    app.get(
      '/metrics',
      {
        config: { public: true, trace: false, rateLimit: false, pressureHandler: letThroughUnderPressure },
        onRequest: async (request, reply) => {
          if (deps.metricsToken !== undefined && !bearerMatches(request.headers.authorization, deps.metricsToken)) {
            return reply.problem('unauthorized', {
              detail: 'This endpoint needs the bearer token set in METRICS_TOKEN.',
              headers: { 'www-authenticate': 'Bearer realm="metrics"' },
            });
          }
        },
        schema: {
          tags: ['health'],
          summary: 'Prometheus metrics (text exposition format); bearer METRICS_TOKEN when set',
          produces: ['text/plain'],
          response: { 200: MetricsTextSchema, ...problemResponses(401) },
        },
      },
      async (_request, reply) => {
        // prom-client 15 writes NaN as `Nan`; the exposition format spells it `NaN`.
        const text = (await deps.registry.metrics()).replace(/ Nan$/gm, ' NaN');
        return reply.type(deps.registry.contentType).send(text);
      },
    );

    // Everything but the uptime is fixed for the life of the process: built once.
    const startedAtMs = app.lifecycle.startedAt.getTime();
    const info = {
      name: 'valhalla-kernel',
      version: app.lifecycle.version,
      instanceId: app.lifecycle.instanceId,
      startedAt: app.lifecycle.startedAt.toISOString(),
      driver: app.database.driver,
      packs: app.packs.map(({ name, code, description }) => ({ name, code, description })),
    };
    app.get(
      '/system/info',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: ['health'],
          summary: 'What runs here: version, instance, uptime, database driver and packs (from memory)',
          querystring: HealthQuerySchema,
          response: { 200: InfoSchema, ...problemResponses(400) },
        },
      },
      async () => ({ ...info, uptimeSeconds: Math.round((Date.now() - startedAtMs) / 1000) }),
    );

    app.get(
      '/system/health',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: ['health'],
          summary: 'Detailed health: components with latency, version, uptime, packs',
          description: 'Always 200 while the process answers; `status` is `degraded` when a component is not ok.',
          querystring: HealthQuerySchema,
          response: { 200: HealthSchema, ...problemResponses(400) },
        },
      },
      async () => healthReport(deps.report),
    );

    app.get(
      '/system/metrics/snapshots',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: ['health'],
          summary: 'Periodic snapshots of key figures per instance, newest first',
          querystring: SnapshotQuerySchema,
          response: { 200: PageOf(SnapshotSchema), ...problemResponses(400, 503) },
        },
      },
      async (request) => {
        const q = request.query;
        const page = await deps.snapshots.list({ ...q, limit: pageLimit(q) });
        return { items: page.items.map(toApi), nextCursor: page.nextCursor };
      },
    );
  };
