import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import { TraceIdParams, TraceListQuerySchema, TraceSummarySchema, TraceTreeSchema } from './schemas.js';
import { buildSpanTree, type SpanTreeNode, type TraceService, type TraceSpanRow } from './service.js';

const attributesOf = (row: TraceSpanRow) =>
  row.attributes && typeof row.attributes === 'object' && !Array.isArray(row.attributes) ? (row.attributes as Record<string, unknown>) : null;

const spanToApi = (row: TraceSpanRow) => ({
  traceId: row.traceId,
  spanId: row.spanId,
  parentSpanId: row.parentSpanId,
  name: row.name,
  kind: row.kind,
  startedAt: row.startedAt.toISOString(),
  durationMs: row.durationMs,
  status: row.status,
  statusCode: row.statusCode,
  attributes: attributesOf(row),
  instanceId: row.instanceId,
});

type ApiNode = ReturnType<typeof spanToApi> & { children: ApiNode[] };
const nodeToApi = (node: SpanTreeNode): ApiNode => ({ ...spanToApi(node), children: node.children.map(nodeToApi) });

export const tracingRoutes =
  (service: Pick<TraceService, 'listRoots' | 'spansOf'>): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/system/traces',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: ['traces'],
          summary: 'Recent traces (their root spans), newest first',
          querystring: TraceListQuerySchema,
          response: { 200: PageOf(TraceSummarySchema), ...problemResponses(400, 503) },
        },
      },
      async (request) => {
        const q = request.query;
        const page = await service.listRoots({ ...q, limit: pageLimit(q) });
        return { items: page.items.map((r) => ({ ...spanToApi(r), spanCount: r.spanCount })), nextCursor: page.nextCursor };
      },
    );

    app.get(
      '/system/traces/:traceId',
      {
        config: { scope: 'system:read' },
        schema: {
          tags: ['traces'],
          summary: 'Every recorded span of one trace, as a tree',
          params: TraceIdParams,
          response: { 200: TraceTreeSchema, ...problemResponses(400, 404, 503) },
        },
      },
      async (request) => {
        const { traceId } = request.params;
        const { spans, truncated } = await service.spansOf(traceId);
        if (spans.length === 0) throw problemError('resource-not-found', `No spans recorded for trace ${traceId}`);
        return { traceId, spanCount: spans.length, truncated, roots: buildSpanTree(spans).map(nodeToApi) };
      },
    );
  };
