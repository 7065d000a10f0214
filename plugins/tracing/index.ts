import type { FastifyRequest } from 'fastify';
import { performance } from 'node:perf_hooks';
import { definePack } from '../../src/pack.js';
import { createServerSpanHooks, documentTraceContext } from './hooks.js';
import { tracingRoutes } from './routes.js';
import { createTraceService, type SpanStatus, type TraceSpanInsert, type TraceSpanRow } from './service.js';
import { createTraceContextFactory, propagationHeaders, type PropagationHeaders, type TraceContext } from './trace-context.js';
import { traceSpans } from './table.js';

export type { PropagationHeaders, TraceContext } from './trace-context.js';

/** Where a span hangs: under a request's server span, under another span, or (null) at the start of a new trace. */
export type SpanParent = FastifyRequest | TraceContext | null;

export interface SpanRecord {
  context: TraceContext;
  name: string;
  kind: TraceSpanRow['kind'];
  startedAt: Date;
  durationMs: number;
  status?: SpanStatus;
  statusCode?: number | null;
  attributes?: Record<string, unknown> | null;
}

export interface ActiveSpan {
  readonly context: TraceContext;
  /** `traceparent` (this span as the parent) and `tracestate`, for the outgoing call this span measures. */
  headers(): PropagationHeaders;
  /** Records the span (when sampled) with its duration; call once. */
  end(result?: { status?: SpanStatus; statusCode?: number | null; attributes?: Record<string, unknown> }): void;
}

export interface Tracing {
  /** Headers for an outgoing HTTP call: the same trace, a new child span id. */
  outgoingHeaders(parent: SpanParent): PropagationHeaders;
  /** A client or internal span under `parent`; `end()` records it. */
  startSpan(name: string, options: { parent: SpanParent; kind?: 'client' | 'internal'; attributes?: Record<string, unknown> }): ActiveSpan;
  /** Records a finished span (dropped unless its context is sampled). */
  recordSpan(span: SpanRecord): void;
}

/**
 * TW: correlation and tracing. Every request is a server span in W3C Trace Context terms
 * (https://www.w3.org/TR/trace-context/): an inbound `traceparent` is continued, otherwise a
 * trace starts; the response carries the span's `traceparent`. Sampled spans (the caller's
 * sampled flag, else TRACE_SAMPLE_RATE decided from the trace id, so every instance agrees)
 * are written in batches. The correlation id itself (X-Request-ID) is the kernel's genReqId.
 */
export default definePack({
  name: 'tracing',
  code: 'TW',
  description: 'W3C trace context on every request, sampled spans in batches, trace list and trace tree',
  dependencies: [],
  async register(app) {
    const service = createTraceService({ db: app.db });
    const writer = app.batchWriters.create<TraceSpanInsert>({ name: 'trace_spans', write: (rows) => service.insertMany(rows) });
    const contexts = createTraceContextFactory(app.env.TRACE_SAMPLE_RATE);
    const { instanceId } = app.lifecycle;

    const contextOf = (parent: SpanParent): TraceContext | null => (parent === null || 'traceId' in parent ? parent : parent.traceContext);

    const tracing: Tracing = {
      outgoingHeaders(parent) {
        return propagationHeaders(contexts.child(contextOf(parent)));
      },
      startSpan(name, options) {
        const context = contexts.child(contextOf(options.parent));
        const startedAt = new Date();
        const start = performance.now();
        let ended = false;
        return {
          context,
          headers: () => propagationHeaders(context),
          end(result = {}) {
            if (ended) return;
            ended = true;
            tracing.recordSpan({
              context,
              name,
              kind: options.kind ?? 'internal',
              startedAt,
              durationMs: performance.now() - start,
              status: result.status,
              statusCode: result.statusCode,
              attributes: options.attributes || result.attributes ? { ...options.attributes, ...result.attributes } : null,
            });
          },
        };
      },
      recordSpan(span) {
        if (!span.context.sampled) return;
        writer.push({
          traceId: span.context.traceId,
          spanId: span.context.spanId,
          parentSpanId: span.context.parentSpanId,
          isRoot: span.context.parentSpanId === null,
          name: span.name.slice(0, 200),
          kind: span.kind,
          startedAt: span.startedAt,
          durationMs: span.durationMs,
          status: span.status ?? 'unset',
          statusCode: span.statusCode ?? null,
          attributes: span.attributes ?? null,
          instanceId,
        });
      },
    };

    app.retention.category({ name: 'trace_spans', description: 'Recorded spans', table: traceSpans, idColumn: traceSpans.id, timeColumn: traceSpans.startedAt, readScope: 'system:read', defaultRetainDays: 7 });
    app.decorate('tracing', tracing);
    app.decorateRequest('traceContext', null);
    const hooks = createServerSpanHooks({ contexts, push: (row) => writer.push(row), instanceId });
    app.addHook('onRequest', hooks.onRequest);
    app.addHook('onResponse', hooks.onResponse);
    documentTraceContext(app);
  },
  routes: async (app) => {
    await app.register(tracingRoutes(createTraceService({ db: app.db })));
  },
});

declare module 'fastify' {
  interface FastifyInstance {
    tracing: Tracing;
  }
  interface FastifyRequest {
    /** The request's server span (W3C Trace Context); set by the tracing pack's first onRequest hook. */
    traceContext: TraceContext | null;
  }
}
