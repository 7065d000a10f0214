import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import type { TemplateItems } from './index.js';
import { CreateTemplateItemBody, TemplateItemQuery, TemplateItemSchema, UpdateTemplateItemBody } from './schemas.js';

const TAGS = ['template'];
const PATH = '/system/template-items';
const TARGET = 'template-item';

const notFound = (id: number) => problemError('resource-not-found', `No template item ${id}`);

/**
 * Full CRUD. A write route reads "validate (the schema) → write through → reply":
 * `app.writeThrough` runs the service call and records its audit entry in one transaction,
 * notifies `names` in it (every instance reloads on commit; all happen or none) and reloads
 * `names` here before the route replies. A pack whose data no request reads from memory drops
 * `refresh`: `app.writeThrough(request, {}, ...)`.
 */
export const templateItemRoutes =
  ({ service, names }: TemplateItems): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      PATH,
      {
        config: { scope: 'template:write' },
        schema: {
          tags: TAGS,
          summary: 'Create a template item',
          body: CreateTemplateItemBody,
          response: { 201: TemplateItemSchema, ...problemResponses(400, 409, 415, 503) },
        },
      },
      async (request, reply) => {
        const item = await app.writeThrough(request, { refresh: [names] }, async (tx) => {
          const created = await service.create(tx, request.body);
          return { result: created, audit: { operation: `${TARGET}.create`, targetType: TARGET, targetId: created.id, after: created } };
        });
        return reply.code(201).header('location', `${PATH}/${item.id}`).send(item);
      },
    );

    app.get(
      PATH,
      {
        config: { scope: 'template:read' },
        schema: {
          tags: TAGS,
          summary: 'List template items, oldest first',
          querystring: TemplateItemQuery,
          response: { 200: PageOf(TemplateItemSchema), ...problemResponses(400, 503) },
        },
      },
      async (request) => service.list({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${PATH}/:id`,
      {
        config: { scope: 'template:read' },
        schema: {
          tags: TAGS,
          summary: 'One template item',
          params: IdParams,
          response: { 200: TemplateItemSchema, ...problemResponses(400, 404, 503) },
        },
      },
      async (request) => {
        const item = await service.byId(request.params.id);
        if (!item) throw notFound(request.params.id);
        return item;
      },
    );

    app.patch(
      `${PATH}/:id`,
      {
        config: { scope: 'template:write' },
        schema: {
          tags: TAGS,
          summary: 'Change a template item',
          params: IdParams,
          body: UpdateTemplateItemBody,
          response: { 200: TemplateItemSchema, ...problemResponses(400, 404, 409, 415, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        return app.writeThrough(request, { refresh: [names] }, async (tx) => {
          const changed = await service.update(tx, id, request.body);
          if (!changed) throw notFound(id); // throwing rolls back: no audit entry, no notification
          return { result: changed.after, audit: { operation: `${TARGET}.update`, targetType: TARGET, targetId: id, before: changed.before, after: changed.after } };
        });
      },
    );

    app.delete(
      `${PATH}/:id`,
      {
        config: { scope: 'template:write' },
        schema: {
          tags: TAGS,
          summary: 'Delete a template item',
          params: IdParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 404, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        await app.writeThrough(request, { refresh: [names] }, async (tx) => {
          const removed = await service.remove(tx, id);
          if (!removed) throw notFound(id);
          return { result: null, audit: { operation: `${TARGET}.delete`, targetType: TARGET, targetId: id, before: removed } };
        });
        return reply.code(204).send(null);
      },
    );
  };
