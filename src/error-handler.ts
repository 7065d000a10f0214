import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import createRouter, { type HTTPMethod } from 'find-my-way';
import { isDatabaseUnavailable, pgErrorCode } from '../db/client.js';
import {
  buildProblem,
  PROBLEM_CONTENT_TYPE,
  PROBLEM_KINDS,
  ProblemError,
  type ProblemErrorItem,
  type ProblemKind,
  type ProblemOptions,
} from './problem.js';
import { safeMessage } from './secrets.js';
import { routeConfigOf } from './pack.js';
import { ownValue } from './own-property.js';

export interface ServerErrorEvent {
  kind: string;
  message: string;
  stack?: string;
  method: string;
  route: string;
  url: string;
  statusCode: number;
  correlationId: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Listeners told about every 5xx (the problem-details pack records them in error_events). */
    serverErrorListeners: Array<(event: ServerErrorEvent) => void>;
  }
  interface FastifyReply {
    /** Sends an RFC 9457 problem for `kind`; the one way a route or hook answers with an error. */
    problem(kind: ProblemKind, options?: ProblemOptions): FastifyReply;
    /** The problem kind this reply answers with (`null` until one is sent): onResponse hooks count refusals by it. */
    problemKind: ProblemKind | null;
  }
}

/** Fastify's own error codes mapped to problem kinds: by code, never by `instanceof`. */
const FASTIFY_CODES: Record<string, ProblemKind> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'malformed-request',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload-too-large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed-request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed-request',
  FST_ERR_CTP_INVALID_TYPE: 'malformed-request',
  FST_ERR_CTP_EMPTY_TYPE: 'unsupported-media-type',
  FST_ERR_BAD_URL: 'malformed-request',
  FST_ERR_ASYNC_CONSTRAINT: 'malformed-request',
  FST_ERR_VALIDATION: 'validation-failed',
  FST_ERR_NOT_FOUND: 'route-not-found',
  FST_ERR_INVALID_URL: 'malformed-request',
  FST_ERR_RATE_LIMIT_EXCEEDED: 'rate-limited',
};

const STATUS_KINDS: Record<number, ProblemKind> = {
  400: 'malformed-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'resource-not-found',
  405: 'method-not-allowed',
  406: 'not-acceptable',
  409: 'conflict',
  413: 'payload-too-large',
  415: 'unsupported-media-type',
  422: 'unprocessable',
  423: 'locked',
  429: 'rate-limited',
  501: 'not-implemented',
  503: 'service-unavailable',
  504: 'upstream-timeout',
};

/** Path without the query string: `instance` must not echo query values (they may hold tokens). */
export const requestPath = (url: string): string => {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
};

function validationItems(error: FastifyError): ProblemErrorItem[] {
  const where = error.validationContext ?? 'body';
  return (error.validation ?? []).slice(0, 20).map((v) => {
    const params = v.params as Record<string, unknown>;
    let pointer = v.instancePath || '';
    let message = v.message ?? 'is invalid';
    if (typeof params.additionalProperty === 'string') {
      pointer = `${pointer}/${params.additionalProperty}`;
      message = `unknown field '${params.additionalProperty}'`;
    } else if (typeof params.missingProperty === 'string') {
      pointer = `${pointer}/${params.missingProperty}`;
      message = 'is required';
    }
    return { in: where, pointer: `#${pointer}`, message };
  });
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, kind: ProblemKind, options: ProblemOptions = {}): FastifyReply {
  const body = buildProblem(kind, { instance: requestPath(request.url), correlationId: request.id }, options);
  if (options.headers) reply.headers(options.headers);
  reply.problemKind = kind;
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(body);
}

const isProblemError = (error: unknown): error is ProblemError =>
  (error as { code?: unknown }).code === 'VALHALLA_PROBLEM';

function classify(error: FastifyError): { kind: ProblemKind; options: ProblemOptions } {
  if (isProblemError(error)) return { kind: error.kind, options: error.options };
  if (error.validation) {
    return { kind: 'validation-failed', options: { detail: 'The request does not match the schema.', errors: validationItems(error) } };
  }
  const byCode = error.code ? ownValue(FASTIFY_CODES, error.code) : undefined;
  if (byCode) {
    const safeDetail = byCode === 'validation-failed' ? undefined : clientDetail(error);
    return { kind: byCode, options: { detail: safeDetail } };
  }
  if (isDatabaseUnavailable(error)) {
    return { kind: 'database-unavailable', options: { detail: 'The database did not answer; retry later.', headers: { 'retry-after': '5' } } };
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return { kind: STATUS_KINDS[status] ?? 'malformed-request', options: { detail: clientDetail(error) } };
  }
  if (status === 503 || status === 501 || status === 504) return { kind: STATUS_KINDS[status]!, options: {} };
  return { kind: 'internal', options: { detail: 'An unexpected error occurred; it was recorded under this correlation id.' } };
}

/** 4xx messages from Fastify and its parsers describe the request, not the server; keep them short. */
function clientDetail(error: FastifyError): string {
  const message = String(error.message ?? '').replace(/\s+/g, ' ').slice(0, 300);
  return message || 'Bad request';
}

const METHODS: HTTPMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

export default fp(
  async function errorHandling(app: FastifyInstance) {
    app.decorate('serverErrorListeners', []);
    app.decorateReply('problemKind', null);
    app.decorateReply('problem', function problem(this: FastifyReply, kind: ProblemKind, options?: ProblemOptions) {
      return sendProblem(this.request, this, kind, options);
    });

    app.setErrorHandler(function handleError(error: FastifyError, request, reply) {
      const { kind, options } = classify(error);
      const status = PROBLEM_KINDS[kind].status;
      if (status >= 500) {
        const event: ServerErrorEvent = {
          kind,
          message: safeMessage(error),
          stack: error.stack,
          method: request.method,
          route: routeConfigOf(request).url ?? requestPath(request.url),
          url: requestPath(request.url),
          statusCode: status,
          correlationId: request.id,
        };
        request.log.error({ err: { type: error.name, code: pgErrorCode(error) ?? error.code, message: event.message }, problem: kind }, 'request failed');
        for (const listener of app.serverErrorListeners) {
          try {
            listener(event);
          } catch {
            // a recorder must never turn a 500 into a crash
          }
        }
      }
      return sendProblem(request, reply, kind, options);
    });

    // Fastify answers an unknown method on a known path with 404; a shadow router of every
    // registered path lets the not-found handler say 405 with `Allow` instead.
    const knownPaths = createRouter();
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) {
        const m = method.toUpperCase() as HTTPMethod;
        if (!knownPaths.hasRoute(m, route.url)) knownPaths.on(m, route.url, () => {});
      }
    });

    app.setNotFoundHandler(function notFound(request, reply) {
      const path = requestPath(request.url);
      const allowed = METHODS.filter((m) => m !== request.method && knownPaths.find(m, path) !== null);
      if (allowed.length > 0) {
        return sendProblem(request, reply, 'method-not-allowed', {
          detail: `${request.method} is not allowed on ${path}`,
          headers: { allow: allowed.join(', ') },
        });
      }
      return sendProblem(request, reply, 'route-not-found', { detail: `No route for ${request.method} ${path}` });
    });
  },
  { name: 'kernel-error-handling', fastify: '5.x' },
);
