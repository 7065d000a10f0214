import { Counter, Gauge } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import type { StateEntry } from '../../src/state-cache.js';
import { bootstrapAdminKey, printGeneratedKey } from './bootstrap.js';
import { addAuthenticationHook, createLastUsedRecorder, documentAuthentication } from './hooks.js';
import { apiKeyRoutes } from './routes.js';
import { createApiKeyService, type ApiKeyService } from './service.js';
import { buildVerifier, EMPTY_VERIFIER, type CredentialVerifier } from './verifier.js';

/** What this pack offers other packs and tests. */
export interface ApiKeys {
  service: ApiKeyService;
  /** The in-memory verifier every request goes through, rebuilt on NOTIFY. */
  verifier: StateEntry<CredentialVerifier>;
  /** Writes the batched last-use times now (also runs on an interval and at shutdown). */
  flushLastUsed(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    apiKeys: ApiKeys;
  }
}

/** The scopes this pack's routes require; API keys can hold them while the pack is loaded. */
const scopes = {
  'clients:read': 'List API clients and their keys (never the secrets); creating and changing them needs `admin`',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * API clients and keys (UD), and authentication for every route: each route declares the scope
 * it needs (`config.scope`), public routes say so (`config.public`), and the kernel refuses to
 * start with a route that does neither. Keys are verified from memory; a revocation or a
 * suspension reaches every instance through the state cache within a second.
 */
export default definePack({
  name: 'api-keys',
  code: 'UD',
  description: 'API clients and keys: authentication and scopes on every route, key lifecycle, bootstrap admin key',
  scopes,
  dependencies: [],
  async register(app) {
    const service = createApiKeyService({ db: app.db });
    await bootstrapAdminKey(app.db, { adminApiKey: app.env.ADMIN_API_KEY, log: app.log, announce: printGeneratedKey });

    const verifier = app.stateCache.register('api-keys', async () => buildVerifier(await service.credentialRows()), EMPTY_VERIFIER);
    const recorder = createLastUsedRecorder((uses) => service.recordLastUsed(uses), app.log.child({ component: 'api-keys' }));
    const failures = new Counter({
      name: 'valhalla_auth_failures_total',
      help: 'Requests refused by authentication (401, by reason) or authorisation (403, reason "scope")',
      labelNames: ['reason'],
      registers: [app.metrics],
    });
    new Gauge({
      name: 'valhalla_api_keys_loaded',
      help: 'Usable API keys held in memory by this instance',
      registers: [app.metrics],
      collect() {
        this.set(verifier.get().size);
      },
    });
    addAuthenticationHook(app, { verifier, failures, used: recorder.used });
    documentAuthentication(app);

    const timer = setInterval(() => void recorder.flush(), app.env.BATCH_FLUSH_INTERVAL_MS);
    timer.unref();
    app.addHook('onClose', async () => {
      clearInterval(timer);
      await recorder.flush();
    });

    app.overview.add('apiKeys', async () => ({ keysLoaded: verifier.get().size, activeKeys: await service.countActiveKeys() }));
    app.decorate('apiKeys', { service, verifier, flushLastUsed: () => recorder.flush() });
  },
  routes: async (app) => {
    await app.register(apiKeyRoutes(app.apiKeys));
  },
});
