import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import createRouter, { type HTTPMethod } from 'find-my-way';
import type { Counter } from 'prom-client';
import type { BatchWriter } from '../../src/batch-writer.js';
import { routeConfigOf } from '../../src/pack.js';
import type { StateEntry } from '../../src/state-cache.js';
import { presentedKey } from '../api-keys/hooks.js';
import { clientAddressText } from '../../src/ip-address.js';
import { API_KEY_PREFIX, parseApiKey } from '../api-keys/key-format.js';
import type { HitAlerts } from './alerts.js';
import { buildDecoySet, type DecoySet } from './decoys.js';
import { sha256Hex, type ActiveHoneypot, type NewTelemetry } from './service.js';
import { capped } from './telemetry.js';

/** The honeypots every request is checked against, rebuilt when any instance changes one. */
export interface HoneypotState {
  decoys: DecoySet<ActiveHoneypot>;
  /** canary_key honeypots by key id. */
  canaries: ReadonlyMap<string, ActiveHoneypot>;
}

export const EMPTY_STATE: HoneypotState = { decoys: buildDecoySet([]), canaries: new Map() };

export function buildState(active: readonly ActiveHoneypot[]): HoneypotState {
  return {
    decoys: buildDecoySet(active.filter((h) => h.type === 'path' && h.path).map((h) => ({ path: h.path!, value: h }))),
    canaries: new Map(active.filter((h) => h.type === 'canary_key' && h.keyId).map((h) => [h.keyId!, h])),
  };
}

/** A hit as queued for the telemetry writer: headers are sanitised there, off the request path. */
export type PendingHit = Omit<NewTelemetry, 'headers'> & { rawHeaders: IncomingHttpHeaders };

const requestPath = (url: string): string => {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
};

/**
 * The two ways a request is a hit:
 * - a decoy path: only requests no real route answers (the not-found route) are compared, so a
 *   decoy can never shadow a route; the decoy answers at once with its own plausible response;
 * - a canary key: checked in `onResponse`, since the authentication hook refuses the unknown key
 *   with 401 before any later `onRequest` hook (which is also what a thief should see).
 * Either way the hook only queues: telemetry goes to a batch writer, the block and alert run
 * after the response (alerts.ts). Both hooks are registered after the blocklist pack's, so a
 * blocked source gets its 403 before a decoy sees it.
 */
export function addHoneypotHooks(
  app: FastifyInstance,
  deps: { state: StateEntry<HoneypotState>; telemetry: BatchWriter<PendingHit>; alerts: HitAlerts; hits: Counter<'type'> },
): void {
  const { state, telemetry, alerts, hits } = deps;

  function record(honeypot: ActiveHoneypot, request: FastifyRequest): void {
    const path = capped(requestPath(request.url), 2048) ?? '/';
    const userAgent = capped(request.headers['user-agent']);
    // The blocklist's spelling (`::ffff:1.2.3.4` is 1.2.3.4, a proxy's port dropped), so the dashboard joins both by address.
    const sourceIp = clientAddressText(request.ip) ?? request.ip;
    hits.inc({ type: honeypot.type });
    telemetry.push({
      honeypotId: honeypot.id,
      occurredAt: new Date(),
      sourceIp,
      userAgent,
      method: request.method,
      path,
      rawHeaders: request.headers,
      correlationId: request.id,
    });
    void alerts.hit({ honeypot, sourceIp, method: request.method, path, userAgent, request });
  }

  app.addHook('onRequest', function honeypotDecoys(request, reply, done) {
    const { decoys } = state.get();
    // A matched route always wins: decoys only ever answer what would have been a 404.
    if (decoys.size === 0 || routeConfigOf(request).url !== undefined) return done();
    const honeypot = decoys.match(request.url);
    if (!honeypot) return done();
    record(honeypot, request);
    reply.code(honeypot.response.status).header('content-type', honeypot.response.contentType).send(honeypot.response.body);
  });

  app.addHook('onResponse', function honeypotCanaries(request, _reply, done) {
    const { canaries } = state.get();
    if (canaries.size === 0) return done();
    const token = presentedKey(request);
    // `vhk_<keyId>_...`: the key id alone says whether it can be a canary; only then is it parsed and hashed.
    const honeypot = token && token.startsWith(API_KEY_PREFIX) ? canaries.get(token.slice(API_KEY_PREFIX.length, API_KEY_PREFIX.length + 12)) : undefined;
    const parsed = honeypot ? parseApiKey(token!) : null;
    if (parsed && honeypot?.secretHash && timingSafeEqual(Buffer.from(sha256Hex(parsed.secret), 'hex'), honeypot.secretHash)) record(honeypot, request);
    done();
  });
}

/**
 * Why a decoy path may not be used, or null: it would cover a registered route (any method), so
 * it could never be hit, and a prefix decoy over real routes would hide their 404s.
 */
export function createShadowCheck(routes: () => ReadonlyArray<{ method: string; url: string }>) {
  let router: ReturnType<typeof createRouter> | undefined;
  const methods: HTTPMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
  return (decoyPath: string): string | null => {
    if (!router) {
      router = createRouter({ caseSensitive: false });
      for (const r of routes()) {
        const m = r.method as HTTPMethod;
        if (methods.includes(m) && !router.hasRoute(m, r.url)) router.on(m, r.url, () => {});
      }
    }
    if (decoyPath === '/*') return 'a decoy for every path would answer every unknown URL';
    if (decoyPath.endsWith('/*')) {
      const prefix = decoyPath.slice(0, -2);
      const below = routes().find((r) => r.url.toLowerCase() === prefix || r.url.toLowerCase().startsWith(`${prefix}/`));
      return below ? `it covers the route ${below.method} ${below.url}` : null;
    }
    for (const m of methods) {
      const found = router.find(m, decoyPath);
      if (found) return `the route ${m} ${decoyPath} answers it`;
    }
    return null;
  };
}
