import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { hasScope } from '../../src/access.js';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import { IdParams, StrictObject } from '../../src/schemas.js';
import type { RequestFigures } from './figures.js';
import { ChainVerificationSchema, FiguresQuery, FiguresSchema, OperationQuery, OperationSchema, OverviewSchema } from './schemas.js';
import type { AdminOperationService } from './service.js';

const TAGS = ['admin'];
const RECENT = 10;
const NoQuery = StrictObject({});

/**
 * The admin API. Read-only: the trail is written by every pack's audited writes, never here.
 * In maintenance mode the shield keeps these answering for `admin` callers only (issue: "the
 * maintenance/admin endpoints for admin callers").
 */
export const adminRoutes =
  (service: AdminOperationService, figures: RequestFigures): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/system/admin',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: TAGS,
          summary: "Overview: instance, every pack's figures (mode, freeze, backlogs, errors) and recent operations",
          querystring: NoQuery,
          response: { 200: OverviewSchema, ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => {
        const { lifecycle } = app;
        // The trail itself needs audit:read: a key that reads the overview through `system:write`
        // (which implies system:read but not audit:read) does not see it. No caller on this
        // scoped route means no authentication pack is loaded at all.
        const mayReadTrail = request.caller === null || hasScope(request, 'audit:read');
        const [sections, recentOperations] = await Promise.all([app.overview.read(), mayReadTrail ? service.recent(RECENT) : undefined]);
        return {
          instance: {
            id: lifecycle.instanceId,
            version: lifecycle.version,
            startedAt: lifecycle.startedAt.toISOString(),
            uptimeSeconds: Math.floor((Date.now() - lifecycle.startedAt.getTime()) / 1000),
            draining: lifecycle.draining,
            driver: app.database.driver,
          },
          sections,
          recentOperations,
        };
      },
    );

    app.get(
      '/system/admin/figures',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: TAGS,
          summary: "This instance's request figures in 10-second buckets over the last hour (rate, p99 latency, 4xx/5xx, blocks, rate limits), from memory",
          querystring: FiguresQuery,
          response: { 200: FiguresSchema, ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => ({ instanceId: app.lifecycle.instanceId, ...figures.read(Date.now(), request.query.minutes ?? 60) }),
    );

    app.get(
      '/system/admin/operations',
      {
        config: { scope: 'audit:read' },
        schema: {
          tags: TAGS,
          summary: 'The audit trail of privileged operations, newest first, filterable',
          querystring: OperationQuery,
          response: { 200: PageOf(OperationSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.list({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      '/system/admin/operations/verify',
      {
        config: { scope: 'audit:read' },
        schema: {
          tags: TAGS,
          summary: "Verify the audit trail's hash chain and report the first broken link",
          querystring: NoQuery,
          response: { 200: ChainVerificationSchema, ...problemResponses(400, 401, 403, 503) },
        },
      },
      async () => service.verify(),
    );

    app.get(
      '/system/admin/operations/:id',
      {
        config: { scope: 'audit:read' },
        schema: {
          tags: TAGS,
          summary: 'One audit entry',
          params: IdParams,
          response: { 200: OperationSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const op = await service.byId(request.params.id);
        if (!op) throw problemError('resource-not-found', `No admin operation ${request.params.id}`);
        return op;
      },
    );
  };
