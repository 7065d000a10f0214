import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ownValue } from '../../src/own-property.js';

/**
 * The smoke runner: executes a profile's checks over real HTTP, a few at a time, and judges each
 * one. No Fastify and no database here: it takes the checks and returns one result per check,
 * in the order of the checks.
 *
 * - Requests use Node's fetch (undici) with `redirect: 'manual'`: a redirect is not followed, its
 *   3xx status is what the check compares (a check can expect 301).
 * - Each request carries `traceparent` (and `tracestate` when there is one) of its own client
 *   span, and `user-agent: valhalla-smoke/<version>`.
 * - `timeoutMs` bounds the whole exchange, headers and body; `maxLatencyMs` is the slowest
 *   acceptable answer. Latency runs from sending the request to the end of the body read, and at
 *   most `maxBodyBytes` of the body are read (the rest is cancelled).
 * - Failures become short sentences without stacks, addresses' credentials or response bodies.
 */
export const SMOKE_METHODS = ['GET', 'HEAD', 'POST'] as const;
export type SmokeMethod = (typeof SMOKE_METHODS)[number];

export interface SmokeCheck {
  name: string;
  method: SmokeMethod;
  /** Starts with `/`; appended to the profile's base URL (query string allowed). */
  path: string;
  expectedStatus: number;
  /** Case-sensitive substring the (first `maxBodyBytes` of the) body must contain. */
  bodyContains?: string;
  maxLatencyMs: number;
  timeoutMs: number;
}

export interface SmokeCheckResult {
  name: string;
  method: SmokeMethod;
  url: string;
  /** Null when no response arrived (refused, timeout, DNS, TLS). */
  statusCode: number | null;
  /** Milliseconds from sending to the end of the body read (or to the failure). */
  latencyMs: number;
  passed: boolean;
  /** Why it failed, sanitised; null when it passed. */
  error: string | null;
}

/** The client span around one check's request. */
export interface CheckSpan {
  /** `traceparent` (and `tracestate`) naming this span as the parent of the server's work. */
  headers: Record<string, string>;
  end(result: SmokeCheckResult): void;
}

export interface SmokeRunOptions {
  baseUrl: string;
  checks: readonly SmokeCheck[];
  /** Most requests in flight at once (at least 1). */
  concurrency: number;
  userAgent: string;
  /** Aborts every request still in flight (shutdown). */
  signal?: AbortSignal;
  /** A client span per check; without it a fresh W3C traceparent is still sent. */
  startSpan?: (check: SmokeCheck, url: string) => CheckSpan;
  maxBodyBytes?: number;
}

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** The check's URL: the base URL without its trailing slash, then the check's path. */
export function checkUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/\/+$/, '') + path;
}

export async function runSmokeChecks(opts: SmokeRunOptions): Promise<SmokeCheckResult[]> {
  const limit = Math.max(1, Math.floor(opts.concurrency));
  return mapWithConcurrency(opts.checks, limit, (check) => runCheck(check, opts));
}

/** A tiny pool: at most `limit` calls of `fn` pending at once, results in input order. */
export async function mapWithConcurrency<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function runCheck(check: SmokeCheck, opts: SmokeRunOptions): Promise<SmokeCheckResult> {
  const url = checkUrl(opts.baseUrl, check.path);
  const span = opts.startSpan?.(check, url) ?? { headers: { traceparent: randomTraceparent() }, end: () => {} };
  const result = await exchange(check, url, span.headers, opts);
  span.end(result);
  return result;
}

async function exchange(check: SmokeCheck, url: string, traceHeaders: Record<string, string>, opts: SmokeRunOptions): Promise<SmokeCheckResult> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, check.timeoutMs);
  const onAbort = () => controller.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const base = { name: check.name, method: check.method, url };
  const started = performance.now();
  try {
    if (opts.signal?.aborted) throw new Error('aborted');
    const response = await fetch(url, {
      method: check.method,
      redirect: 'manual',
      signal: controller.signal,
      headers: { accept: '*/*', 'user-agent': opts.userAgent, ...traceHeaders },
      body: check.method === 'POST' ? '' : undefined,
    });
    const body = await readCapped(response, opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    const latencyMs = performance.now() - started;
    const problems: string[] = [];
    if (response.status !== check.expectedStatus) problems.push(`expected status ${check.expectedStatus}, got ${response.status}`);
    if (check.bodyContains !== undefined && !body.includes(check.bodyContains)) problems.push(`body does not contain ${JSON.stringify(shorten(check.bodyContains))}`);
    if (latencyMs > check.maxLatencyMs) problems.push(`latency ${Math.round(latencyMs)} ms above ${check.maxLatencyMs} ms`);
    return { ...base, statusCode: response.status, latencyMs, passed: problems.length === 0, error: problems.length ? problems.join('; ') : null };
  } catch (err) {
    const latencyMs = performance.now() - started;
    const error = timedOut ? `timeout after ${check.timeoutMs} ms` : opts.signal?.aborted ? 'aborted' : describeFetchError(err);
    return { ...base, statusCode: null, latencyMs, passed: false, error };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Up to `max` bytes of the body as UTF-8 text; the rest is cancelled, not downloaded. */
async function readCapped(response: Response, max: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = max - size;
      chunks.push(value.length > room ? value.subarray(0, room) : value);
      size += Math.min(value.length, room);
    }
  } finally {
    if (size >= max) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  UND_ERR_SOCKET: 'connection closed by the server',
  ENOTFOUND: 'DNS lookup failed',
  EAI_AGAIN: 'DNS lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connect timeout',
  UND_ERR_CONNECT_TIMEOUT: 'connect timeout',
  UND_ERR_HEADERS_OVERFLOW: 'response headers too large',
  HPE_INVALID_CONSTANT: 'invalid HTTP response',
  HPE_INVALID_HEADER_TOKEN: 'invalid HTTP response',
};

/**
 * A failed fetch as one short sentence. Only the error's code is looked at (never its message,
 * which can carry addresses or internals): undici reports `TypeError('fetch failed')` with the
 * socket error as `cause`, or an AggregateError of them when several addresses were tried.
 */
export function describeFetchError(err: unknown): string {
  const code = errorCode(err);
  if (code === undefined) return 'request failed';
  const known = ownValue(NETWORK_ERRORS, code);
  if (known) return known;
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_/.test(code)) return `TLS error (${code})`;
  return `request failed (${code})`;
}

function errorCode(err: unknown, depth = 0): string | undefined {
  if (depth > 3 || typeof err !== 'object' || err === null) return undefined;
  const { code, cause, errors } = err as { code?: unknown; cause?: unknown; errors?: unknown };
  // Codes are short upper-case identifiers; anything else is not repeated to the client.
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,47}$/.test(code)) return code;
  const inner = errorCode(cause, depth + 1);
  if (inner) return inner;
  if (Array.isArray(errors)) return errorCode(errors[0], depth + 1);
  return undefined;
}

const shorten = (text: string): string => (text.length > 60 ? `${text.slice(0, 57)}...` : text);

/**
 * A W3C traceparent for a new, unsampled trace (when no tracing service is there to make one):
 * flags `02`, the Level 2 random-trace-id flag, since the whole id is random.
 */
export function randomTraceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-02`;
}
