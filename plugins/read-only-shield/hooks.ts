import type { FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import { hasScope } from '../../src/access.js';
import { alwaysOpen, retryAfterSeconds, shieldVerdict, type ShieldVerdict } from './service.js';
import { routeConfigOf } from '../../src/pack.js';

/**
 * The read-only shield: one `onRequest` hook in the root scope, so it covers every pack's routes.
 * It runs after authentication (the caller's scopes decide who may still use the maintenance
 * endpoints) and reads only memory: `app.maintenance.current()` is a cached view recomputed when
 * the state changes or a window/until boundary passes.
 */
export function installShield(app: FastifyInstance): void {
  const blocked = new Counter({
    name: 'valhalla_shield_blocked_total',
    help: 'Requests refused by the read-only shield, by effective mode',
    labelNames: ['mode'],
    registers: [app.metrics],
  });
  const counters: Record<Exclude<ShieldVerdict, 'pass'>, ReturnType<typeof blocked.labels>> = {
    'read-only': blocked.labels({ mode: 'read_only' }),
    maintenance: blocked.labels({ mode: 'maintenance' }),
  };

  // Callback style: no promise per request in normal mode; a refusal answers and does not call `done`.
  app.addHook('onRequest', (request, reply, done) => {
    const view = app.maintenance.current();
    const { mode } = view.effective;
    if (mode === 'normal') return done();
    const config = routeConfigOf(request);
    const verdict = shieldVerdict(
      mode,
      request.method,
      { url: config.url, notFound: request.is404, public: config.public === true, shield: config.shield },
      () => ({ admin: hasScope(request, 'admin'), maintenanceWrite: hasScope(request, 'maintenance:write') }),
    );
    if (verdict === 'pass') return done();
    counters[verdict].inc();
    const now = Date.now();
    const retryAfter = retryAfterSeconds(view.effective.until, now);
    const untilText = view.effective.until ? ` until ${view.effective.until.toISOString()}` : '';
    reply.problem(verdict, {
      detail:
        verdict === 'read-only'
          ? `The service is read-only${untilText}: ${request.method} is refused; reads still answer.`
          : `The service is in maintenance${untilText}; only health, metrics and documentation answer.`,
      extensions: { mode, until: view.effective.until?.toISOString() ?? null },
      headers: retryAfter === undefined ? undefined : { 'retry-after': String(retryAfter) },
    });
  });
}

/**
 * The OpenAPI side of the shield: a route it may close answers 503 `maintenance`, and writes
 * (not GET/HEAD/OPTIONS, not `shield: 'read'`) also 503 `read-only`, with Retry-After when the
 * end is known.
 */
export function documentShield(app: FastifyInstance): void {
  app.apiDocs.describe(({ method, url, config }) => {
    if (alwaysOpen({ url, notFound: false, public: config.public === true, shield: config.shield })) return undefined;
    const reads = method === 'GET' || method === 'HEAD' || method === 'OPTIONS' || config.shield === 'read';
    return { problems: [...(reads ? [] : [{ kind: 'read-only' as const, headers: ['Retry-After'] }]), { kind: 'maintenance', headers: ['Retry-After'] }] };
  });
}
