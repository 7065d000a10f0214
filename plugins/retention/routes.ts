import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import type { Retention } from './index.js';
import { CategoryParams, CategorySchema, CreatePolicyBody, PolicyQuery, PolicySchema, RunQuery, RunResultSchema, UpdatePolicyBody } from './schemas.js';

const TAGS = ['retention'];
const ROOT = '/system/retention';
const TARGET = 'retention-policy';

/** 404 for a category without a policy; the detail says whether the category exists at all. */
function noPolicy(retention: Retention, category: string) {
  const known = retention.registry.get(category) !== undefined;
  return problemError('resource-not-found', known ? `No retention policy for '${category}' yet; create one with POST ${ROOT}.` : `No retention category '${category}'.`, { category });
}

/**
 * Policies (control-plane writes: `freeze: true`, through `app.writeThrough`; no in-memory state
 * to refresh, the purge job reads them when it runs), the registered categories, and running a
 * policy now (a purge is data housekeeping, allowed during a freeze; `?dryRun=true` only counts;
 * the runner audits each batch in that batch's own transaction).
 */
export const retentionRoutes =
  (retention: Retention): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { service, runner } = retention;

    app.get(
      `${ROOT}/categories`,
      {
        config: { scope: 'retention:read' },
        schema: {
          tags: TAGS,
          summary: 'The purgeable categories the loaded packs and the kernel registered, each with its floor and policy',
          response: { 200: Type.Object({ items: Type.Array(CategorySchema) }), ...problemResponses(503) },
        },
      },
      async () => ({ items: await service.categories() }),
    );

    app.post(
      ROOT,
      {
        config: { scope: 'retention:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: "Create a category's retention policy (one per category; the category's default retention when none is given)",
          body: CreatePolicyBody,
          response: { 201: PolicySchema, ...problemResponses(400, 409, 415, 422, 503) },
        },
      },
      async (request, reply) => {
        const policy = await app.writeThrough(request, {}, async (tx) => {
          const created = await service.create(tx, request.body);
          return { result: created, audit: { operation: `${TARGET}.create`, targetType: TARGET, targetId: created.category, after: created } };
        });
        return reply.code(201).header('location', `${ROOT}/${policy.category}`).send(policy);
      },
    );

    app.get(
      ROOT,
      {
        config: { scope: 'retention:read' },
        schema: { tags: TAGS, summary: 'List retention policies, oldest first', querystring: PolicyQuery, response: { 200: PageOf(PolicySchema), ...problemResponses(400, 503) } },
      },
      async (request) => service.list({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${ROOT}/:category`,
      {
        config: { scope: 'retention:read' },
        schema: { tags: TAGS, summary: "One category's policy, with its last run and rows purged", params: CategoryParams, response: { 200: PolicySchema, ...problemResponses(400, 404, 503) } },
      },
      async (request) => {
        const policy = await service.get(request.params.category);
        if (!policy) throw noPolicy(retention, request.params.category);
        return policy;
      },
    );

    app.patch(
      `${ROOT}/:category`,
      {
        config: { scope: 'retention:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Change the retention (not below the floor) or switch the periodic purge of a category',
          params: CategoryParams,
          body: UpdatePolicyBody,
          response: { 200: PolicySchema, ...problemResponses(400, 404, 415, 422, 503) },
        },
      },
      async (request) => {
        const { category } = request.params;
        return app.writeThrough(request, {}, async (tx) => {
          const changed = await service.update(tx, category, request.body);
          if (!changed) throw noPolicy(retention, category);
          return { result: changed.after, audit: { operation: `${TARGET}.update`, targetType: TARGET, targetId: category, before: changed.before, after: changed.after } };
        });
      },
    );

    app.delete(
      `${ROOT}/:category`,
      {
        config: { scope: 'retention:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Delete a policy: the category is kept forever until a new policy exists',
          params: CategoryParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 404, 503) },
        },
      },
      async (request, reply) => {
        const { category } = request.params;
        await app.writeThrough(request, {}, async (tx) => {
          const removed = await service.remove(tx, category);
          if (!removed) throw noPolicy(retention, category);
          return { result: null, audit: { operation: `${TARGET}.delete`, targetType: TARGET, targetId: category, before: removed } };
        });
        return reply.code(204).send(null);
      },
    );

    app.post(
      `${ROOT}/:category/run`,
      {
        config: { scope: 'retention:write' },
        schema: {
          tags: TAGS,
          summary: 'Purge a category now by its policy, in batches within the run budget (`?dryRun=true`: count only)',
          params: CategoryParams,
          querystring: RunQuery,
          response: { 200: RunResultSchema, ...problemResponses(400, 404, 409, 422, 503) },
        },
      },
      async (request) => {
        const { category } = request.params;
        const result = await runner.run(category, {
          dryRun: request.query.dryRun === true,
          audit: (tx, entry) => app.audit.record(tx, request, entry),
        });
        if (!result) throw noPolicy(retention, category);
        return result;
      },
    );
  };
