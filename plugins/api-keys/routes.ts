import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import type { ApiKeys } from './index.js';
import {
  ApiClientSchema,
  ApiKeySchema,
  ClientQuery,
  KeyParams,
  KeyQuery,
  NewApiKeySchema,
  RevokeKeyBody,
  RotateKeyBody,
  scopedBodies,
  type NewApiKey,
} from './schemas.js';

const TAGS = ['api-keys'];
const PATH = '/system/api-clients';

const clientNotFound = (id: number) => problemError('resource-not-found', `No API client ${id}.`);
const keyNotFound = (id: number, keyId: string) => problemError('resource-not-found', `API client ${id} has no key ${keyId}.`);

/** The token never reaches the audit trail. */
const withoutToken = ({ token: _token, ...key }: NewApiKey) => key;

/**
 * API clients and their keys. Reads need `clients:read`; every write needs `admin`, since a key
 * that can mint keys can grant itself anything. Each write goes through `app.writeThrough`: it
 * commits with its audit entry and the notification that makes every instance rebuild its
 * verifier, and this instance rebuilds its own before replying.
 */
export const apiKeyRoutes =
  ({ service, verifier }: ApiKeys): FastifyPluginAsyncTypebox =>
  async (app) => {
    const refresh = { refresh: [verifier] };
    const { CreateClientBody, UpdateClientBody, CreateKeyBody } = scopedBodies(app.scopes.names);

    app.post(
      PATH,
      {
        config: { scope: 'admin' },
        schema: { tags: TAGS, summary: 'Create an API client', body: CreateClientBody, response: { 201: ApiClientSchema, ...problemResponses(400, 401, 403, 409, 415, 503) } },
      },
      async (request, reply) => {
        const client = await app.writeThrough(request, refresh, async (tx) => {
          const created = await service.createClient(tx, request.body);
          return { result: created, audit: { operation: 'api-client.create', targetType: 'api-client', targetId: created.id, after: created } };
        });
        return reply.code(201).header('location', `${PATH}/${client.id}`).send(client);
      },
    );

    app.get(
      PATH,
      {
        config: { scope: 'clients:read' },
        schema: { tags: TAGS, summary: 'List API clients, oldest first', querystring: ClientQuery, response: { 200: PageOf(ApiClientSchema), ...problemResponses(400, 401, 403, 503) } },
      },
      async (request) => service.listClients({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${PATH}/:id`,
      {
        config: { scope: 'clients:read' },
        schema: { tags: TAGS, summary: 'Get an API client', params: IdParams, response: { 200: ApiClientSchema, ...problemResponses(400, 401, 403, 404, 503) } },
      },
      async (request) => {
        const client = await service.clientById(request.params.id);
        if (!client) throw clientNotFound(request.params.id);
        return client;
      },
    );

    app.patch(
      `${PATH}/:id`,
      {
        config: { scope: 'admin' },
        schema: {
          tags: TAGS,
          summary: 'Change an API client: scopes, status (suspend/reactivate), limits',
          description: "Narrowing the scopes narrows every key of the client at once; suspending refuses all its keys on every instance within a second.",
          params: IdParams,
          body: UpdateClientBody,
          response: { 200: ApiClientSchema, ...problemResponses(400, 401, 403, 404, 409, 415, 503) },
        },
      },
      async (request) => {
        const { reason, ...patch } = request.body;
        return app.writeThrough(request, refresh, async (tx) => {
          const updated = await service.updateClient(tx, request.params.id, patch);
          if (!updated) throw clientNotFound(request.params.id);
          if (patch.status === 'suspended' || patch.scopes) await service.assertAdminRemains(tx);
          const operation = patch.status && patch.status !== updated.before.status ? (patch.status === 'suspended' ? 'api-client.suspend' : 'api-client.reactivate') : 'api-client.update';
          return { result: updated.after, audit: { operation, targetType: 'api-client', targetId: request.params.id, reason, before: updated.before, after: updated.after } };
        });
      },
    );

    app.delete(
      `${PATH}/:id`,
      {
        config: { scope: 'admin' },
        schema: { tags: TAGS, summary: 'Delete an API client and all its keys', params: IdParams, response: { 204: Type.Null(), ...problemResponses(400, 401, 403, 404, 409, 503) } },
      },
      async (request, reply) => {
        await app.writeThrough(request, refresh, async (tx) => {
          const client = await service.removeClient(tx, request.params.id);
          if (!client) throw clientNotFound(request.params.id);
          await service.assertAdminRemains(tx);
          return { result: null, audit: { operation: 'api-client.delete', targetType: 'api-client', targetId: client.id, before: client } };
        });
        return reply.code(204).send(null);
      },
    );

    app.post(
      `${PATH}/:id/keys`,
      {
        config: { scope: 'admin' },
        schema: {
          tags: TAGS,
          summary: 'Create an API key for a client (the key is in this response only)',
          params: IdParams,
          body: CreateKeyBody,
          response: { 201: NewApiKeySchema, ...problemResponses(400, 401, 403, 404, 415, 422, 503) },
        },
      },
      async (request, reply) => {
        const key = await app.writeThrough(request, refresh, async (tx) => {
          const created = await service.createKey(tx, request.params.id, request.body);
          if (!created) throw clientNotFound(request.params.id);
          return { result: created, audit: { operation: 'api-key.create', targetType: 'api-key', targetId: created.keyId, after: withoutToken(created) } };
        });
        return reply.code(201).header('location', `${PATH}/${key.clientId}/keys/${key.keyId}`).header('cache-control', 'no-store').send(key);
      },
    );

    app.get(
      `${PATH}/:id/keys`,
      {
        config: { scope: 'clients:read' },
        schema: { tags: TAGS, summary: "List a client's keys (never their secrets)", params: IdParams, querystring: KeyQuery, response: { 200: PageOf(ApiKeySchema), ...problemResponses(400, 401, 403, 404, 503) } },
      },
      async (request) => {
        if (!(await service.clientById(request.params.id))) throw clientNotFound(request.params.id);
        return service.listKeys(request.params.id, { ...request.query, limit: pageLimit(request.query) });
      },
    );

    app.get(
      `${PATH}/:id/keys/:keyId`,
      {
        config: { scope: 'clients:read' },
        schema: { tags: TAGS, summary: 'Get one key of a client', params: KeyParams, response: { 200: ApiKeySchema, ...problemResponses(400, 401, 403, 404, 503) } },
      },
      async (request) => {
        const key = await service.keyOf(request.params.id, request.params.keyId);
        if (!key) throw keyNotFound(request.params.id, request.params.keyId);
        return key;
      },
    );

    app.post(
      `${PATH}/:id/keys/:keyId/revoke`,
      {
        config: { scope: 'admin' },
        schema: {
          tags: TAGS,
          summary: 'Revoke a key (refused on every instance within a second)',
          params: KeyParams,
          body: RevokeKeyBody,
          response: { 200: ApiKeySchema, ...problemResponses(400, 401, 403, 404, 409, 415, 503) },
        },
      },
      async (request) => {
        const { id, keyId } = request.params;
        return app.writeThrough(request, refresh, async (tx) => {
          const revoked = await service.revokeKey(tx, id, keyId, request.body.reason);
          if (!revoked) throw keyNotFound(id, keyId);
          await service.assertAdminRemains(tx);
          return { result: revoked.after, audit: { operation: 'api-key.revoke', targetType: 'api-key', targetId: keyId, reason: request.body.reason, before: revoked.before, after: revoked.after } };
        });
      },
    );

    app.post(
      `${PATH}/:id/keys/:keyId/rotate`,
      {
        config: { scope: 'admin' },
        schema: {
          tags: TAGS,
          summary: 'Rotate a key: a new key now, the old one working for `graceSeconds` more',
          params: KeyParams,
          body: RotateKeyBody,
          response: { 201: Type.Object({ old: ApiKeySchema, replacement: NewApiKeySchema }), ...problemResponses(400, 401, 403, 404, 409, 415, 503) },
        },
      },
      async (request, reply) => {
        const { id, keyId } = request.params;
        const result = await app.writeThrough(request, refresh, async (tx) => {
          const rotated = await service.rotateKey(tx, id, keyId, request.body.graceSeconds, request.body.reason);
          if (!rotated) throw keyNotFound(id, keyId);
          return {
            result: rotated,
            audit: {
              operation: 'api-key.rotate',
              targetType: 'api-key',
              targetId: keyId,
              reason: request.body.reason,
              after: { old: rotated.old, replacement: withoutToken(rotated.replacement), graceSeconds: request.body.graceSeconds },
            },
          };
        });
        return reply
          .code(201)
          .header('location', `${PATH}/${id}/keys/${result.replacement.keyId}`)
          .header('cache-control', 'no-store')
          .send(result);
      },
    );
  };
