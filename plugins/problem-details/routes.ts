import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { PROBLEM_KINDS, problemError, problemResponses, problemTypeUri, type ProblemKind } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import { ErrorEventQuerySchema, ErrorEventSchema, ProblemKindParams, ProblemTypeSchema } from './schemas.js';
import type { ErrorEventRow, ErrorEventService } from './service.js';

const toApi = (row: ErrorEventRow) => ({ ...row, occurredAt: row.occurredAt.toISOString() });

const describe = (kind: ProblemKind) => ({ type: problemTypeUri(kind), ...PROBLEM_KINDS[kind] });

export const problemDetailsRoutes =
  (service: ErrorEventService): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/problems',
      {
        config: { public: true },
        schema: {
          tags: ['problems'],
          summary: 'List every problem type the API answers with',
          response: { 200: Type.Object({ items: Type.Array(ProblemTypeSchema) }) },
        },
      },
      async () => ({ items: (Object.keys(PROBLEM_KINDS) as ProblemKind[]).map(describe) }),
    );

    app.get(
      '/problems/:kind',
      {
        config: { public: true },
        schema: {
          tags: ['problems'],
          summary: 'Documentation of one problem type (the target of a problem `type` URI)',
          params: ProblemKindParams,
          response: { 200: ProblemTypeSchema, ...problemResponses(400, 404) },
        },
      },
      async (request) => {
        const kind = request.params.kind;
        if (!Object.hasOwn(PROBLEM_KINDS, kind)) throw problemError('resource-not-found', `No problem type '${kind}'`);
        return describe(kind as ProblemKind);
      },
    );

    app.get(
      '/system/errors',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: ['errors'],
          summary: 'Recorded server errors (5xx), newest first',
          querystring: ErrorEventQuerySchema,
          response: { 200: PageOf(ErrorEventSchema), ...problemResponses(400, 503) },
        },
      },
      async (request) => {
        const q = request.query;
        const page = await service.list({ ...q, limit: pageLimit(q) });
        return { items: page.items.map(toApi), nextCursor: page.nextCursor };
      },
    );

    app.get(
      '/system/errors/:id',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: ['errors'],
          summary: 'One recorded server error, with its stack',
          params: IdParams,
          response: { 200: ErrorEventSchema, ...problemResponses(400, 404, 503) },
        },
      },
      async (request) => {
        const row = await service.byId(request.params.id);
        if (!row) throw problemError('resource-not-found', `No error event ${request.params.id}`);
        return toApi(row);
      },
    );
  };
