import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemResponses } from '../../src/problem.js';
import type { ConfigRegistry } from './index.js';
import {
  ConfigEntrySchema,
  ConfigHistoryItemSchema,
  ConfigListQuery,
  CreateEntryBody,
  DEFAULT_ENVIRONMENT,
  DeleteQuery,
  EffectivePageSchema,
  EffectiveQuery,
  EntryQuery,
  HistoryQuery,
  KeyParams,
  PutEntryBody,
  RollbackBody,
} from './schemas.js';
import { entryNotFound, type ChangeMeta } from './service.js';

const TAGS = ['config'];
const PATH = '/system/config';
const TARGET = 'config-entry';

/** `client:12`, `bootstrap`, `anonymous`: who changed an entry, as kept on the entry and its history. */
function actorLabel(request: FastifyRequest): string {
  const actor = request.actor;
  if (!actor) return 'anonymous';
  return actor.id ? `${actor.type}:${actor.id}` : actor.type;
}

const meta = (request: FastifyRequest, reason: string | undefined): ChangeMeta => ({ actor: actorLabel(request), reason: reason ?? null, correlationId: request.id });

const entryUrl = (key: string, environment: string) =>
  environment === DEFAULT_ENVIRONMENT ? `${PATH}/${key}` : `${PATH}/${key}?environment=${environment}`;

/**
 * The registry's HTTP API. An entry is addressed by its key in the path and its environment in
 * the query (`?environment=`, default `default`): GET, PUT and DELETE share one URL. Keys hold a
 * dot, so `/system/config/effective` can never be a key. Each write goes through
 * `app.writeThrough`: one transaction with its history row (the service writes it), its audit
 * entry and the state-cache notification; after the commit this instance reloads its accessor at
 * once (the others on the notification).
 */
export const configRoutes =
  ({ service, state }: ConfigRegistry): FastifyPluginAsyncTypebox =>
  async (app) => {
    const refresh = { refresh: [state] };

    app.get(
      PATH,
      {
        config: { scope: 'config:read' },
        schema: {
          tags: TAGS,
          summary: 'List configuration entries by key, then environment',
          querystring: ConfigListQuery,
          response: { 200: PageOf(ConfigEntrySchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.list({ ...request.query, limit: pageLimit(request.query) }),
    );

    // The seed's create: the key in the body. PUT /system/config/{key} creates or replaces.
    app.post(
      PATH,
      {
        config: { scope: 'config:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Create a configuration entry (key in the body); 409 when the key already has one in that environment',
          body: CreateEntryBody,
          response: { 201: ConfigEntrySchema, ...problemResponses(400, 401, 403, 409, 415, 422, 423, 503) },
        },
      },
      async (request, reply) => {
        const { key, environment = DEFAULT_ENVIRONMENT, reason } = request.body;
        const created = await app.writeThrough(request, refresh, async (tx) => {
          const entry = await service.create(tx, request.body, meta(request, reason));
          return { result: entry, audit: { operation: 'config.create', targetType: TARGET, targetId: `${key}@${environment}`, reason: reason ?? null, after: entry } };
        });
        return reply.code(201).header('location', entryUrl(key, environment)).send(created);
      },
    );

    app.get(
      `${PATH}/effective`,
      {
        config: { scope: 'config:read' },
        schema: {
          tags: TAGS,
          summary: "The effective configuration of an environment: default entries overridden by the environment's own",
          querystring: EffectiveQuery,
          response: { 200: EffectivePageSchema, ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.effective({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${PATH}/:key`,
      {
        config: { scope: 'config:read' },
        schema: {
          tags: TAGS,
          summary: 'One configuration entry of one environment',
          params: KeyParams,
          querystring: EntryQuery,
          response: { 200: ConfigEntrySchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const { key } = request.params;
        const environment = request.query.environment ?? DEFAULT_ENVIRONMENT;
        const entry = await service.get(key, environment);
        if (!entry) throw entryNotFound(key, environment);
        return entry;
      },
    );

    app.put(
      `${PATH}/:key`,
      {
        config: { scope: 'config:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Create or change a configuration entry (201 when created); secret-looking keys and values are refused with 422',
          params: KeyParams,
          querystring: EntryQuery,
          body: PutEntryBody,
          response: { 200: ConfigEntrySchema, 201: ConfigEntrySchema, ...problemResponses(400, 401, 403, 409, 415, 422, 423, 503) },
        },
      },
      async (request, reply) => {
        const { key } = request.params;
        const environment = request.query.environment ?? DEFAULT_ENVIRONMENT;
        const { reason } = request.body;
        const change = await app.writeThrough(request, refresh, async (tx) => {
          const changed = await service.put(tx, key, environment, request.body, meta(request, reason));
          return {
            result: changed,
            audit: {
              operation: changed.before ? 'config.update' : 'config.create',
              targetType: TARGET,
              targetId: `${key}@${environment}`,
              reason: reason ?? null,
              before: changed.before,
              after: changed.after,
            },
          };
        });
        if (change.before) return change.after;
        return reply.code(201).header('location', entryUrl(key, environment)).send(change.after);
      },
    );

    app.delete(
      `${PATH}/:key`,
      {
        config: { scope: 'config:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Delete a configuration entry of one environment (its history stays)',
          params: KeyParams,
          querystring: DeleteQuery,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 401, 403, 404, 409, 423, 503) },
        },
      },
      async (request, reply) => {
        const { key } = request.params;
        const { environment = DEFAULT_ENVIRONMENT, reason, expectedVersion } = request.query;
        await app.writeThrough(request, refresh, async (tx) => {
          const removed = await service.remove(tx, key, environment, expectedVersion, meta(request, reason));
          if (!removed) throw entryNotFound(key, environment);
          return { result: null, audit: { operation: 'config.delete', targetType: TARGET, targetId: `${key}@${environment}`, reason: reason ?? null, before: removed } };
        });
        return reply.code(204).send(null);
      },
    );

    app.get(
      `${PATH}/:key/history`,
      {
        config: { scope: 'config:read' },
        schema: {
          tags: TAGS,
          summary: "Every version of a key's entries, deletes included, newest first",
          params: KeyParams,
          querystring: HistoryQuery,
          response: { 200: PageOf(ConfigHistoryItemSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.history(request.params.key, { ...request.query, limit: pageLimit(request.query) }),
    );

    app.post(
      `${PATH}/:key/rollback`,
      {
        config: { scope: 'config:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Roll an entry back: write a new version equal to an earlier one (brings a deleted entry back)',
          params: KeyParams,
          body: RollbackBody,
          response: { 200: ConfigEntrySchema, ...problemResponses(400, 401, 403, 404, 409, 415, 422, 423, 503) },
        },
      },
      async (request) => {
        const { key } = request.params;
        const { environment = DEFAULT_ENVIRONMENT, version, reason, expectedVersion } = request.body;
        return app.writeThrough(request, refresh, async (tx) => {
          const changed = await service.rollback(tx, key, environment, { version, expectedVersion }, meta(request, reason));
          return {
            result: changed.after,
            audit: {
              operation: 'config.rollback',
              targetType: TARGET,
              targetId: `${key}@${environment}`,
              reason: reason ?? null,
              before: changed.before,
              after: { ...changed.after, restoredVersion: version },
            },
          };
        });
      },
    );
  };
