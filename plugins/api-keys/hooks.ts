import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Counter } from 'prom-client';
import { pgErrorCode } from '../../db/client.js';
import { alsoSatisfying, scopeSatisfies } from '../../src/access.js';
import type { Actor } from '../../src/audit/writer.js';
import type { OperationDocs } from '../../src/api-docs.js';
import type { StateEntry } from '../../src/state-cache.js';
import type { CredentialVerifier } from './verifier.js';
import { routeConfigOf } from '../../src/pack.js';

/** `Authorization: Bearer <key>` or `X-API-Key: <key>`; undefined when neither is sent. */
export function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (authorization !== undefined) {
    // RFC 9110 §11.1: the scheme is case-insensitive.
    return /^bearer /i.test(authorization) ? authorization.slice(7).trim() : '';
  }
  const header = request.headers['x-api-key'];
  return typeof header === 'string' ? header.trim() : undefined;
}

const CHALLENGE = { 'www-authenticate': 'Bearer realm="valhalla"' };

/**
 * Authentication and authorisation for every route, packs' included: a route's
 * `config.scope` says what the key must hold; public routes (probes, docs) and unknown URLs pass.
 * Answered from memory: the verifier is a state-cache entry rebuilt when keys or clients change.
 * The 401 never says which part was wrong (missing, malformed, unknown, expired, revoked,
 * suspended); the reason goes to the log and to `valhalla_auth_failures_total`.
 */
export function addAuthenticationHook(
  app: FastifyInstance,
  deps: { verifier: StateEntry<CredentialVerifier>; failures: Counter<'reason'>; used: (keyId: string, at: number) => void },
): void {
  const { verifier, failures, used } = deps;
  const actors = new WeakMap<object, Actor>();

  app.addHook('onRequest', function authenticate(request, reply, done) {
    const scope = routeConfigOf(request).scope;
    if (scope === undefined) return done();
    const now = Date.now();
    const result = verifier.get().verify(presentedKey(request), now);
    if (!result.ok) {
      failures.inc({ reason: result.reason });
      request.log.info({ event: 'auth.refused', reason: result.reason }, 'API key refused');
      reply.problem('unauthorized', { detail: 'A valid API key is required: send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`.', headers: CHALLENGE });
      return;
    }
    const caller = result.caller;
    request.caller = caller;
    let actor = actors.get(caller);
    if (!actor) {
      actor = Object.freeze({ type: 'client', id: String(caller.clientId), keyId: caller.keyId });
      actors.set(caller, actor);
    }
    request.actor = actor;
    used(caller.keyId, now);
    if (!scopeSatisfies(caller.scopes, scope)) {
      failures.inc({ reason: 'scope' });
      reply.problem('forbidden', { detail: `This route requires the scope '${scope}', which this API key does not hold.`, extensions: { requiredScope: scope } });
      return;
    }
    done();
  });
}

/**
 * Last-use times, batched: each request only sets a map entry; one UPDATE per interval writes
 * them all. A failed write keeps the entries for the next attempt.
 */
export function createLastUsedRecorder(write: (uses: ReadonlyMap<string, Date>) => Promise<void>, log: FastifyInstance['log']) {
  let pending = new Map<string, number>();
  let flushing: Promise<void> | null = null;
  return {
    used(keyId: string, at: number) {
      pending.set(keyId, at);
    },
    get pending() {
      return pending.size;
    },
    async flush(): Promise<void> {
      if (flushing) await flushing;
      if (pending.size === 0) return;
      const batch = pending;
      pending = new Map();
      flushing = write(new Map([...batch].map(([k, at]) => [k, new Date(at)])))
        .catch((err: unknown) => {
          for (const [k, at] of batch) if ((pending.get(k) ?? 0) < at) pending.set(k, at);
          log.warn({ code: pgErrorCode(err) ?? 'unknown', keys: batch.size }, 'could not record API key last use; will retry');
        })
        .finally(() => {
          flushing = null;
        });
      await flushing;
    },
  };
}

/**
 * The OpenAPI side of the hook above: two ways to present a key, each operation's scope (in its
 * security requirement and its description), 401 with the challenge and 403 where a key is needed.
 */
export function documentAuthentication(app: FastifyInstance): void {
  app.apiDocs.securityScheme('bearerApiKey', { type: 'http', scheme: 'bearer', bearerFormat: 'vhk_ API key', description: 'An API key as `Authorization: Bearer vhk_…`.' });
  app.apiDocs.securityScheme('apiKeyHeader', { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'An API key as `X-API-Key: vhk_…`.' });
  app.apiDocs.describe(({ config }): OperationDocs => {
    const scope = config.scope;
    if (scope === undefined) return { security: [] };
    const others = alsoSatisfying(scope);
    return {
      security: [{ bearerApiKey: [scope] }, { apiKeyHeader: [scope] }],
      problems: [{ kind: 'unauthorized' }, { kind: 'forbidden' }],
      note: `**Scope:** \`${scope}\`${others.length ? `, or one that includes it: ${others.map((s) => `\`${s}\``).join(', ')}` : ''}.`,
    };
  });
}
