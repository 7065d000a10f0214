import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
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
