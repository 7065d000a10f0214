import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import type { AttributeValue, EvaluationContext } from './evaluate.js';
import type { Flags } from './index.js';
import {
  BulkEvaluationSchema,
  CreateFlagBody,
  EvaluateBody,
  EvaluateQuery,
  EvaluationSchema,
  FlagKeyParams,
  FlagQuery,
  FlagSchema,
  UpdateFlagBody,
} from './schemas.js';

const TAGS = ['feature-flags'];
const PATH = '/system/flags';
const TARGET = 'feature-flag';
const ATTRIBUTE_PREFIX = 'attr.';

const notFound = (key: string) => problemError('resource-not-found', `No flag '${key}'`, { key });

/** `?subject=u-1&attr.country=NZ&attr.groups=a&attr.groups=b` as an evaluation context. */
function contextFromQuery(query: Record<string, unknown>): EvaluationContext {
  const attributes: Array<[string, AttributeValue]> = [];
  for (const [name, value] of Object.entries(query)) {
    if (!name.startsWith(ATTRIBUTE_PREFIX)) continue;
    if (typeof value === 'string') attributes.push([name.slice(ATTRIBUTE_PREFIX.length), value]);
    else if (Array.isArray(value)) attributes.push([name.slice(ATTRIBUTE_PREFIX.length), value.map(String)]);
  }
  // fromEntries defines own properties: `attr.__proto__=x` is an attribute named `__proto__`,
  // where an assignment would have replaced the object's prototype.
  return { key: typeof query.subject === 'string' ? query.subject : undefined, attributes: Object.fromEntries(attributes) };
}

/**
 * CRUD on flags (each write through `app.writeThrough`: audited and notified in its transaction,
 * then this instance reloads at once) and the two evaluation endpoints, which read memory only.
 */
export const flagRoutes =
  ({ service, state, evaluate, evaluateAll }: Flags): FastifyPluginAsyncTypebox =>
  async (app) => {
    const refresh = { refresh: [state] };

    app.post(
      PATH,
      {
        config: { scope: 'flags:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Create a feature flag',
          body: CreateFlagBody,
          response: { 201: FlagSchema, ...problemResponses(400, 401, 403, 409, 415, 422, 423, 503) },
        },
      },
      async (request, reply) => {
        const flag = await app.writeThrough(request, refresh, async (tx) => {
          const created = await service.create(tx, request.body);
          return { result: created, audit: { operation: `${TARGET}.create`, targetType: TARGET, targetId: created.key, after: created } };
        });
        return reply.code(201).header('location', `${PATH}/${flag.key}`).send(flag);
      },
    );

    app.get(
      PATH,
      {
        config: { scope: 'flags:read' },
        schema: {
          tags: TAGS,
          summary: 'List feature flags, oldest first (filters: type, enabled, keyPrefix)',
          querystring: FlagQuery,
          response: { 200: PageOf(FlagSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.list({ ...request.query, limit: pageLimit(request.query) }),
    );

    // Evaluation: a read sent as POST (the context is a body). Kept out of the read-only shield,
    // which refuses POSTs in read_only mode: applications must keep getting their flags.
    app.post(
      `${PATH}/evaluate`,
      {
        config: { scope: 'flags:read', shield: 'read' },
        schema: {
          tags: TAGS,
          summary: 'Evaluate many flags (all when `flags` is omitted) for one context, from memory',
          description: 'An unknown key in `flags` gives an entry with reason ERROR and errorCode FLAG_NOT_FOUND, not a 404.',
          body: EvaluateBody,
          response: { 200: BulkEvaluationSchema, ...problemResponses(400, 401, 403, 413, 415) },
        },
      },
      async (request) => ({ flags: evaluateAll(request.body.context, request.body.flags) }),
    );

    app.get(
      `${PATH}/:key`,
      {
        config: { scope: 'flags:read' },
        schema: {
          tags: TAGS,
          summary: 'One feature flag',
          params: FlagKeyParams,
          response: { 200: FlagSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const flag = await service.byKey(request.params.key);
        if (!flag) throw notFound(request.params.key);
        return flag;
      },
    );

    app.get(
      `${PATH}/:key/evaluate`,
      {
        config: { scope: 'flags:read' },
        schema: {
          tags: TAGS,
          summary: 'Evaluate one flag for the subject and attributes in the query, from memory',
          description: '`subject` is the subject key; `attr.<name>=<value>` sets an attribute (repeat it for a list). An unknown flag is a 404.',
          params: FlagKeyParams,
          querystring: EvaluateQuery,
          response: { 200: EvaluationSchema, ...problemResponses(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const result = evaluate(request.params.key, contextFromQuery(request.query));
        if (result.errorCode === 'FLAG_NOT_FOUND') throw notFound(request.params.key);
        return result;
      },
    );

    app.patch(
      `${PATH}/:key`,
      {
        config: { scope: 'flags:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Change a feature flag (optionally only at `expectedVersion`)',
          params: FlagKeyParams,
          body: UpdateFlagBody,
          response: { 200: FlagSchema, ...problemResponses(400, 401, 403, 404, 409, 415, 422, 423, 503) },
        },
      },
      async (request) => {
        const { key } = request.params;
        return app.writeThrough(request, refresh, async (tx) => {
          const changed = await service.update(tx, key, request.body);
          if (!changed) throw notFound(key);
          return { result: changed.after, audit: { operation: `${TARGET}.update`, targetType: TARGET, targetId: key, before: changed.before, after: changed.after } };
        });
      },
    );

    app.delete(
      `${PATH}/:key`,
      {
        config: { scope: 'flags:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Delete a feature flag (409 while another flag has it as a prerequisite)',
          params: FlagKeyParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 401, 403, 404, 409, 423, 503) },
        },
      },
      async (request, reply) => {
        const { key } = request.params;
        await app.writeThrough(request, refresh, async (tx) => {
          const removed = await service.remove(tx, key);
          if (!removed) throw notFound(key);
          return { result: null, audit: { operation: `${TARGET}.delete`, targetType: TARGET, targetId: key, before: removed } };
        });
        return reply.code(204).send(null);
      },
    );
  };
