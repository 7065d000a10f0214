import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { decodeIdCursor, PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses, ProblemError, type ProblemErrorItem } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import { canonicalDecoyPath } from './decoys.js';
import type { Honeypots } from './index.js';
import { CreatedHoneypotSchema, CreateHoneypotBody, HoneypotQuery, HoneypotSchema, TelemetryQuery, TelemetrySchema, UpdateHoneypotBody} from './schemas.js';

const TAGS = ['security'];
const PATH = '/system/security/honeypots';
const TARGET = 'honeypot';
/** Fields that only a decoy path has. */
const PATH_ONLY = ['path', 'template', 'status', 'contentType', 'body'] as const;
const PATCH_PATH_ONLY = ['path', 'status', 'contentType', 'body'] as const;

const notFound = (id: number) => problemError('resource-not-found', `No honeypot ${id}`);
const invalid = (errors: ProblemErrorItem[]) => new ProblemError('validation-failed', { detail: errors.map((e) => `${e.pointer.slice(2)} ${e.message}`).join('; '), errors });

/**
 * CRUD of honeypots and the keyset list of each one's telemetry. Every write goes through
 * `app.writeThrough`: the row, its audit entry and the state notification commit together, and
 * every instance's decoy and canary sets change within a second, without a restart.
 */
export const honeypotRoutes =
  ({ service, state, shadowedBy }: Honeypots): FastifyPluginAsyncTypebox =>
  async (app) => {
    /** Refuses (409) a decoy path that a registered route answers or that covers one. */
    const checkedPath = (raw: string): void => {
      const canonical = canonicalDecoyPath(raw);
      const why = shadowedBy(canonical);
      if (why) throw new ProblemError('conflict', { detail: `The decoy path '${canonical}' cannot be used: ${why}.`, extensions: { path: canonical } });
    };

    app.post(
      PATH,
      {
        config: { scope: 'security:write' },
        schema: {
          tags: TAGS,
          summary: 'Create a honeypot: a decoy path, or a canary API key (its token is in this response only)',
          body: CreateHoneypotBody,
          response: { 201: CreatedHoneypotSchema, ...problemResponses(400, 409, 415, 503) },
        },
      },
      async (request, reply) => {
        const body = request.body;
        if (body.type === 'path') {
          if (body.path === undefined) throw invalid([{ in: 'body', pointer: '#/path', message: 'is required for a honeypot of type path' }]);
          checkedPath(body.path);
        } else {
          const extra = PATH_ONLY.filter((f) => body[f] !== undefined);
          if (extra.length) throw invalid(extra.map((f) => ({ in: 'body', pointer: `#/${f}`, message: 'is only for a honeypot of type path' })));
        }
        const created = await app.writeThrough(request, { refresh: [state] }, async (tx) => {
          const out = await service.create(tx, body);
          return { result: out, audit: { operation: `${TARGET}.create`, targetType: TARGET, targetId: out.honeypot.id, after: out.honeypot } };
        });
        return reply
          .code(201)
          .header('location', `${PATH}/${created.honeypot.id}`)
          .send({ ...created.honeypot, ...(created.token ? { token: created.token } : {}) });
      },
    );

    app.get(
      PATH,
      {
        config: { scope: 'security:read' },
        schema: {
          tags: TAGS,
          summary: 'List honeypots, oldest first',
          querystring: HoneypotQuery,
          response: { 200: PageOf(HoneypotSchema), ...problemResponses(400, 503) },
        },
      },
      async (request) => service.list({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${PATH}/:id`,
      {
        config: { scope: 'security:read' },
        schema: { tags: TAGS, summary: 'One honeypot', params: IdParams, response: { 200: HoneypotSchema, ...problemResponses(400, 404, 503) } },
      },
      async (request) => {
        const h = await service.byId(request.params.id);
        if (!h) throw notFound(request.params.id);
        return h;
      },
    );

    app.patch(
      `${PATH}/:id`,
      {
        config: { scope: 'security:write' },
        schema: {
          tags: TAGS,
          summary: 'Change a honeypot (enable, disable, move a decoy, change its answer or its auto-block)',
          params: IdParams,
          body: UpdateHoneypotBody,
          response: { 200: HoneypotSchema, ...problemResponses(400, 404, 409, 415, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const patch = request.body;
        if (patch.path !== undefined) checkedPath(patch.path);
        return app.writeThrough(request, { refresh: [state] }, async (tx) => {
          // A honeypot's type never changes: checked before the update, which the table's check would refuse with a 500.
          const current = await service.byId(id, tx);
          if (!current) throw notFound(id);
          if (current.type === 'canary_key') {
            const extra = PATCH_PATH_ONLY.filter((f) => patch[f] !== undefined);
            if (extra.length) throw invalid(extra.map((f) => ({ in: 'body', pointer: `#/${f}`, message: 'is only for a honeypot of type path' })));
          }
          const changed = await service.update(tx, id, patch);
          if (!changed) throw notFound(id);
          return { result: changed.after, audit: { operation: `${TARGET}.update`, targetType: TARGET, targetId: id, before: changed.before, after: changed.after } };
        });
      },
    );

    app.delete(
      `${PATH}/:id`,
      {
        config: { scope: 'security:write' },
        schema: {
          tags: TAGS,
          summary: 'Delete a honeypot (its telemetry stays until retention purges it)',
          params: IdParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 404, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        await app.writeThrough(request, { refresh: [state] }, async (tx) => {
          const removed = await service.remove(tx, id);
          if (!removed) throw notFound(id);
          return { result: removed, audit: { operation: `${TARGET}.delete`, targetType: TARGET, targetId: id, before: removed } };
        });
        return reply.code(204).send(null);
      },
    );

    app.get(
      `${PATH}/:id/telemetry`,
      {
        config: { scope: 'security:read' },
        schema: {
          tags: TAGS,
          summary: "A honeypot's hits, newest first (written in batches: a hit appears within about a second)",
          params: IdParams,
          querystring: TelemetryQuery,
          response: { 200: PageOf(TelemetrySchema), ...problemResponses(400, 404, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        // A bad cursor is the caller's 400 whether or not the honeypot exists.
        decodeIdCursor(request.query.cursor);
        if (!(await service.byId(id))) throw notFound(id);
        return service.telemetry(id, { ...request.query, limit: pageLimit(request.query) });
      },
    );
  };
