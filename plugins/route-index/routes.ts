import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { PageOf, PageQuerySchema, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import { StrictObject } from '../../src/schemas.js';
import type { RouteIndex } from './index.js';
import { DiffQuery, RouteDiffSchema, RouteInfoSchema, RouteQuery, RouteVersionSchema } from './schemas.js';
import { listRoutes } from './service.js';

const TAGS = ['routes'];

export const routeIndexRoutes =
  (index: RouteIndex): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/system/routes',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: TAGS,
          summary: 'Every route of this instance: pack, summary, required scope, public, shield, rate limit',
          querystring: RouteQuery,
          response: { 200: PageOf(RouteInfoSchema), ...problemResponses(400, 401, 403) },
        },
      },
      async (request) => listRoutes(index.routes(), { ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      '/system/routes/versions',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: TAGS,
          summary: 'Instance versions whose routes were recorded, newest first',
          querystring: StrictObject(PageQuerySchema.properties),
          response: { 200: PageOf(RouteVersionSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => index.service.versions({ ...request.query, limit: pageLimit(request.query) }, app.lifecycle.version),
    );

    app.get(
      '/system/routes/diff',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: TAGS,
          summary: 'Routes added, removed and changed between two recorded versions',
          querystring: DiffQuery,
          response: { 200: RouteDiffSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const diff = await index.service.diff(request.query.from, request.query.to);
        if ('unknown' in diff) throw problemError('resource-not-found', `No routes were recorded for version '${diff.unknown}'.`, { version: diff.unknown });
        return diff;
      },
    );
  };
