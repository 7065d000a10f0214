import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { requestPath } from '../../src/error-handler.js';
import type { TraceSpanInsert } from './service.js';
import { formatTraceparent, type TraceContextFactory } from './trace-context.js';
import { routeConfigOf } from '../../src/pack.js';

/** One `traceparent` field; two of them are invalid (W3C Trace Context), as is none. */
const singleValue = (value: string | string[] | undefined): string | undefined => (typeof value === 'string' ? value : undefined);

/**
 * The request's server span. onRequest continues the caller's trace (or starts one) and
 * answers with the span's own `traceparent`; onResponse hands a sampled span to the batching
 * writer. Unsampled requests cost one small object and one header; nothing touches the database.
 */
export function createServerSpanHooks(deps: { contexts: TraceContextFactory; push: (row: TraceSpanInsert) => void; instanceId: string }) {
  const { contexts, push, instanceId } = deps;
  return {
    onRequest(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      const context = contexts.fromHeaders(singleValue(request.headers.traceparent), request.headers.tracestate);
      request.traceContext = context;
      reply.header('traceparent', formatTraceparent(context));
      done();
    },

    onResponse(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      const context = request.traceContext;
      // Probes (config.trace === false) carry trace context but are not recorded as spans.
      if (context !== null && context.sampled && routeConfigOf(request).trace !== false) {
        const route = routeConfigOf(request).url ?? null;
        const durationMs = reply.elapsedTime;
        const statusCode = reply.statusCode;
        push({
          traceId: context.traceId,
          spanId: context.spanId,
          parentSpanId: context.parentSpanId,
          // The entry of the trace into this service, whether or not the caller sent a parent.
          isRoot: true,
          name: route === null ? request.method : `${request.method} ${route}`,
          kind: 'server',
          startedAt: new Date(Date.now() - durationMs),
          durationMs,
          status: statusCode >= 500 ? 'error' : 'unset',
          statusCode,
          attributes: { method: request.method, route, path: requestPath(request.url), correlationId: request.id },
          instanceId,
        });
      }
      done();
    },
  };
}

/** The OpenAPI side of tracing: every traced route reads the W3C Trace Context headers. */
export function documentTraceContext(app: FastifyInstance): void {
  app.apiDocs.header('traceparent', { description: 'W3C Trace Context (https://www.w3.org/TR/trace-context/): the caller\'s span; answered with this request\'s own.', schema: { type: 'string', maxLength: 55 } });
  app.apiDocs.header('tracestate', { description: 'W3C Trace Context vendor state, passed on with `traceparent`.', schema: { type: 'string', maxLength: 512 } });
  app.apiDocs.describe(({ config }) => (config.trace === false ? undefined : { requestHeaders: ['traceparent', 'tracestate'] }));
}
