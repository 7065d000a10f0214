import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemResponses } from '../../src/problem.js';
import { SystemLogQuerySchema, SystemLogSchema, SystemLogSearchSchema } from './schemas.js';
import type { SystemLogRow, SystemLogService } from './service.js';

const toApi = (row: SystemLogRow) => ({
  ...row,
  occurredAt: row.occurredAt.toISOString(),
  data: row.data && typeof row.data === 'object' && !Array.isArray(row.data) ? (row.data as Record<string, unknown>) : null,
});

const one = <T>(value: T | undefined): T[] | undefined => (value === undefined ? undefined : [value]);

export const systemLogRoutes =
  (service: Pick<SystemLogService, 'query'>): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/system/logs',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: ['logs'],
          summary: 'Persisted system log entries (audit, security, lifecycle events), newest first',
          querystring: SystemLogQuerySchema,
          response: { 200: PageOf(SystemLogSchema), ...problemResponses(400, 503) },
        },
      },
      async (request) => {
        const q = request.query;
        const page = await service.query({
          level: one(q.level),
          source: one(q.source),
          event: one(q.event),
          correlationId: one(q.correlationId),
          actor: one(q.actor),
          since: q.since,
          until: q.until,
          cursor: q.cursor,
          limit: pageLimit(q),
        });
        return { items: page.items.map(toApi), nextCursor: page.nextCursor };
      },
    );

    // A read with a body (several values per filter do not fit a query string well); it
    // changes nothing, so it needs only the read scope and records no audit entry.
    app.post(
      '/system/logs/query',
      {
        // A search sent as POST: answered in read-only mode like the GET.
        config: { scope: 'system:read', shield: 'read' },
        schema: {
          tags: ['logs'],
          summary: 'Search system log entries with several values per filter, newest first',
          body: SystemLogSearchSchema,
          response: { 200: PageOf(SystemLogSchema), ...problemResponses(400, 415, 503) },
        },
      },
      async (request) => {
        const b = request.body;
        const page = await service.query({ ...b, limit: pageLimit(b) });
        return { items: page.items.map(toApi), nextCursor: page.nextCursor };
      },
    );
  };
