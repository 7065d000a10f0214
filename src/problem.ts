import { Type, type Static } from '@sinclair/typebox';
import { pgErrorCode, UNIQUE_VIOLATION } from '../db/client.js';

/**
 * RFC 9457 problem details. Every error a client sees is one of these kinds; each kind has a
 * stable `type` URI (`/problems/<slug>`, documented at that path) so clients switch on `type`,
 * never on `detail` text. https://www.rfc-editor.org/rfc/rfc9457
 */
export const PROBLEM_KINDS = {
  'validation-failed': { status: 400, title: 'Request validation failed', description: 'A parameter, query value, header or body field is missing, of the wrong type, out of range or unknown. `errors` lists each with a JSON pointer.' },
  'malformed-request': { status: 400, title: 'Malformed request', description: 'The request could not be parsed: invalid JSON, invalid encoding, a forbidden key such as `__proto__`, or a bad header.' },
  'invalid-cursor': { status: 400, title: 'Invalid pagination cursor', description: 'The `cursor` query value was not produced by this API or has been altered.' },
  unauthorized: { status: 401, title: 'Authentication required', description: 'The API key is missing, malformed, unknown, expired or revoked.' },
  forbidden: { status: 403, title: 'Forbidden', description: 'The caller is authenticated but lacks the scope this route requires.' },
  blocked: { status: 403, title: 'Request blocked', description: 'A blocklist rule refuses this request (its address, network, user agent, path or API client); the extension member `ruleId` names the rule, which `GET /system/security/blocklist/check` explains.' },
  'route-not-found': { status: 404, title: 'Route not found', description: 'No route answers this method and path.' },
  'resource-not-found': { status: 404, title: 'Resource not found', description: 'The addressed resource does not exist.' },
  'method-not-allowed': { status: 405, title: 'Method not allowed', description: 'The path exists but not for this method; `Allow` lists the methods it accepts.' },
  'not-acceptable': { status: 406, title: 'Not acceptable', description: 'The server cannot produce a representation the client accepts.' },
  conflict: { status: 409, title: 'Conflict', description: 'The request conflicts with the current state: a unique name taken, or a transition not allowed from the current state.' },
  'uri-too-long': { status: 414, title: 'URI too long', description: 'A path parameter exceeds its maximum length.' },
  'payload-too-large': { status: 413, title: 'Payload too large', description: 'The body exceeds BODY_LIMIT.' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type', description: 'The body must be sent as application/json.' },
  unprocessable: { status: 422, title: 'Unprocessable content', description: 'The request is well-formed but refused by a rule of the resource.' },
  locked: { status: 423, title: 'Locked', description: 'A change freeze is in force.' },
  'rate-limited': { status: 429, title: 'Too many requests', description: 'A rate limit or quota was exceeded; retry after `Retry-After` seconds.' },
  'quota-exceeded': { status: 429, title: 'Daily quota exceeded', description: "The API client used its requests for this UTC day; `Retry-After` says when the quota resets." },
  internal: { status: 500, title: 'Internal server error', description: 'An unexpected error. It was recorded with the correlation id; nothing about its cause is returned.' },
  'not-implemented': { status: 501, title: 'Not implemented', description: 'The method is not supported by the server.' },
  'service-unavailable': { status: 503, title: 'Service unavailable', description: 'The service cannot answer right now (shutting down, read-only or maintenance mode).' },
  'read-only': { status: 503, title: 'Read-only mode', description: 'The service is in read-only mode: writes are refused until an operator switches it back; `Retry-After` is set when the end is known.' },
  maintenance: { status: 503, title: 'Maintenance', description: 'The service is in maintenance mode: only health, metrics, docs and, for admin callers, the maintenance and admin endpoints answer.' },
  'database-unavailable': { status: 503, title: 'Database unavailable', description: 'The database did not answer; retry later.' },
  'counter-store-unavailable': { status: 503, title: 'Counter store unavailable', description: 'The shared rate-limit counter store (Redis) did not answer, so usage held there cannot be read; retry later. Requests themselves are still served: limits fail open while it is down.' },
  'under-pressure': { status: 503, title: 'Under pressure', description: 'The instance is shedding load; retry after `Retry-After` seconds.' },
  'upstream-timeout': { status: 504, title: 'Upstream timeout', description: 'A dependency did not answer in time.' },
} as const;

export type ProblemKind = keyof typeof PROBLEM_KINDS;

export const problemTypeUri = (kind: ProblemKind): string => `/problems/${kind}`;

export const ProblemErrorItemSchema = Type.Object({
  in: Type.Optional(Type.String()),
  pointer: Type.String(),
  message: Type.String(),
});

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    correlationId: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(ProblemErrorItemSchema)),
  },
  { $id: 'Problem', additionalProperties: true, description: 'RFC 9457 problem details' },
);
export type Problem = Static<typeof ProblemSchema>;
export type ProblemErrorItem = Static<typeof ProblemErrorItemSchema>;

export interface ProblemOptions {
  detail?: string;
  errors?: ProblemErrorItem[];
  /** Extension members (e.g. `ruleId`, `currentState`); must not hold secrets. */
  extensions?: Record<string, unknown>;
  headers?: Record<string, string>;
}

/**
 * The one error type routes and services throw to answer a client. The error handler maps it
 * by `code`; anything else that reaches the handler without a known code is a 500.
 */
export class ProblemError extends Error {
  readonly code = 'VALHALLA_PROBLEM';
  readonly kind: ProblemKind;
  readonly statusCode: number;
  readonly options: ProblemOptions;
  constructor(kind: ProblemKind, options: ProblemOptions = {}) {
    super(options.detail ?? PROBLEM_KINDS[kind].title);
    this.kind = kind;
    this.statusCode = PROBLEM_KINDS[kind].status;
    this.options = options;
  }
}

export const problemError = (kind: ProblemKind, detail?: string, extensions?: Record<string, unknown>): ProblemError =>
  new ProblemError(kind, { detail, extensions });

export function buildProblem(kind: ProblemKind, ctx: { instance?: string; correlationId?: string }, options: ProblemOptions = {}): Problem {
  const def = PROBLEM_KINDS[kind];
  const body: Problem = {
    ...options.extensions,
    type: problemTypeUri(kind),
    title: def.title,
    status: def.status,
    detail: options.detail ?? def.title,
  };
  if (ctx.instance !== undefined) body.instance = ctx.instance;
  if (ctx.correlationId) body.correlationId = ctx.correlationId;
  if (options.errors?.length) body.errors = options.errors;
  return body;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** Response schemas for the error codes a route can answer, referencing the shared Problem schema. */
export function problemResponses(...statuses: number[]): Record<number, { $ref: string }> {
  const out: Record<number, { $ref: string }> = {};
  for (const s of statuses) out[s] = { $ref: 'Problem#' };
  return out;
}

/**
 * For `.catch()` on an insert or update: a unique violation becomes the client's 409 with
 * `detail`; anything else is rethrown. The constraint, not a read-before-write, decides.
 */
export const conflictOnUnique =
  (detail: string, extensions?: Record<string, unknown>) =>
  (err: unknown): never => {
    if (pgErrorCode(err) === UNIQUE_VIOLATION) throw new ProblemError('conflict', { detail, extensions });
    throw err;
  };
