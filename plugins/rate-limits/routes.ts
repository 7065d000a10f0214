import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import type { RateLimits } from './index.js';
import { CreateRateLimitBody, RateLimitQuery, RateLimitRuleSchema, StatusQuery, StatusSchema, UpdateRateLimitBody } from './schemas.js';

const TAGS = ['rate-limits'];
const PATH = '/system/rate-limits';
const TARGET = 'rate-limit';

const notFound = (id: number) => problemError('resource-not-found', `No rate-limit rule ${id}`);

/**
 * Rule CRUD and current usage. Each write goes through `app.writeThrough`: it commits with its
 * audit entry and the state-cache notification; this instance then reloads its rules at once,
 * the others on the notification. Writes are control-plane changes: `freeze: true`.
 */
export const rateLimitRoutes =
  ({ service, rules, status }: RateLimits): FastifyPluginAsyncTypebox =>
  async (app) => {
    const refresh = { refresh: [rules] };

    app.post(
      PATH,
      {
        config: { scope: 'rate-limits:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Create a rate-limit rule',
          description: 'Most specific rule wins: api_key > the client\'s own limit > client > route > ip > api_key `*` > client `*` > ip `*` > global > RATE_LIMIT_DEFAULT_MAX.',
          body: CreateRateLimitBody,
          response: { 201: RateLimitRuleSchema, ...problemResponses(400, 401, 403, 409, 415, 423, 503) },
        },
      },
      async (request, reply) => {
        const rule = await app.writeThrough(request, refresh, async (tx) => {
          const created = await service.create(tx, request.body);
          return { result: created, audit: { operation: `${TARGET}.create`, targetType: TARGET, targetId: created.id, after: created } };
        });
        return reply.code(201).header('location', `${PATH}/${rule.id}`).send(rule);
      },
    );

    app.get(
      PATH,
      {
        config: { scope: 'rate-limits:read' },
        schema: {
          tags: TAGS,
          summary: 'List rate-limit rules, oldest first',
          querystring: RateLimitQuery,
          response: { 200: PageOf(RateLimitRuleSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.list({ ...request.query, limit: pageLimit(request.query) }),
    );

    // Registered before `/:id` only for readability: the router prefers the static segment anyway.
    app.get(
      `${PATH}/status`,
      {
        config: { scope: 'rate-limits:read' },
        schema: {
          tags: TAGS,
          summary: 'Current usage of a subject (ip:<address>, api_key:<keyId>, client:<id>) or of the caller',
          querystring: StatusQuery,
          response: { 200: StatusSchema, ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => status(request, request.query.key),
    );

    app.get(
      `${PATH}/:id`,
      {
        config: { scope: 'rate-limits:read' },
        schema: {
          tags: TAGS,
          summary: 'One rate-limit rule',
          params: IdParams,
          response: { 200: RateLimitRuleSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const rule = await service.byId(request.params.id);
        if (!rule) throw notFound(request.params.id);
        return rule;
      },
    );

    app.patch(
      `${PATH}/:id`,
      {
        config: { scope: 'rate-limits:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Change a rate-limit rule (effective on every instance within a second)',
          params: IdParams,
          body: UpdateRateLimitBody,
          response: { 200: RateLimitRuleSchema, ...problemResponses(400, 401, 403, 404, 409, 415, 423, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        return app.writeThrough(request, refresh, async (tx) => {
          const changed = await service.update(tx, id, request.body);
          if (!changed) throw notFound(id);
          return { result: changed.after, audit: { operation: `${TARGET}.update`, targetType: TARGET, targetId: id, before: changed.before, after: changed.after } };
        });
      },
    );

    app.delete(
      `${PATH}/:id`,
      {
        config: { scope: 'rate-limits:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Delete a rate-limit rule',
          params: IdParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 401, 403, 404, 423, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        await app.writeThrough(request, refresh, async (tx) => {
          const removed = await service.remove(tx, id);
          if (!removed) throw notFound(id);
          return { result: null, audit: { operation: `${TARGET}.delete`, targetType: TARGET, targetId: id, before: removed } };
        });
        return reply.code(204).send(null);
      },
    );
  };
