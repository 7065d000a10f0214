import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import pino from 'pino';
import { requestPath } from './error-handler.js';
import { safeMessage } from './secrets.js';
import { routeConfigOf } from './pack.js';

/**
 * One access-log line per request, written when the response finishes (Fastify's default is
 * two: "incoming request" and "request completed"). The correlation id comes from the request
 * logger's bindings; headers are never logged, so keys and cookies cannot leak here.
 */
export class AccessLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'correlationId' });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      path: requestPath(request.url),
      route: routeConfigOf(request).url,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 100) / 100,
      ip: request.ip,
    };
    if (error) reply.log.error({ ...line, err: { message: safeMessage(error) } }, 'request errored');
    else reply.log.info(line, 'request');
  }
}

/** Inbound `X-Request-ID` is reused only when it is short and plain; anything else is replaced. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
export function correlationIdFor(req: IncomingMessage): string {
  const inbound = req.headers['x-request-id'];
  return typeof inbound === 'string' && REQUEST_ID.test(inbound) ? inbound : randomUUID();
}

/**
 * Secrets never reach a log line. The access log writes no headers; these explicit paths cover
 * any pack that logs a request or its headers. Explicit paths only: pino applies redaction to
 * every line, and wildcard paths cost ~15 µs per request (measured by npm run bench); packs
 * that persist arbitrary data redact it themselves (the system-log pack does).
 */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  'res.headers["set-cookie"]',
];

/**
 * stdout for the logs, written in chunks of up to 8 KiB instead of one write per line: a write
 * syscall per request cost ~6 µs of system time here (npm run bench). Lines are collected in an
 * array and joined once per chunk: sonic-boom's own `minLength` buffering appends to one string
 * and measures its UTF-8 length on every write, which cost 1.7 µs per line against 0.85 this way
 * (scripts measured in-process). The chunk goes to a synchronous sonic-boom, which retries EAGAIN
 * on a full pipe, so a chunk never waits for a thread-pool hand-off. A timer writes out what is
 * collected at least every `flushMs`; close() flushes, and lines logged after it (the server's
 * last words) are written at once.
 */
const LOG_FLUSH_INTERVAL_MS = 100;
const LOG_CHUNK = 8192;
export function bufferedStdout(flushMs = LOG_FLUSH_INTERVAL_MS) {
  const out = pino.destination({ dest: 1, sync: true });
  let lines: string[] = [];
  let size = 0;
  let closed = false;
  const flush = () => {
    if (size === 0) return;
    const chunk = lines.join('');
    lines = [];
    size = 0;
    out.write(chunk);
  };
  const destination = {
    write(line: string): void {
      if (closed) {
        out.write(line);
        return;
      }
      lines.push(line);
      size += line.length;
      if (size >= LOG_CHUNK) flush();
    },
    flush,
  };
  const timer = setInterval(flush, flushMs);
  timer.unref();
  return {
    destination,
    close() {
      clearInterval(timer);
      flush();
      closed = true;
      out.flushSync();
    },
  };
}

/**
 * The kernel's request logging as Fastify options: pino at `level` with `REDACT_PATHS`, one
 * access line per request (AccessLogController), correlation ids from a plain `X-Request-ID` or
 * a new UUID. `npm run bench` also starts bare Fastify with these options, so its table shows
 * what request logging alone costs next to the packs (bench/bare-server.ts).
 */
export function requestLogging(level: string, destination: { write(line: string): void }) {
  return {
    logger: { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, stream: destination },
    genReqId: correlationIdFor,
    logController: new AccessLogController(),
  } satisfies FastifyServerOptions;
}
