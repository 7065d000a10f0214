import { Counter, Gauge } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import type { StateEntry } from '../../src/state-cache.js';
import { createConfigAccessor, toSnapshot, type ConfigAccessor, type ConfigSnapshot } from './accessor.js';
import { configRoutes } from './routes.js';
import { createConfigService, type ConfigService } from './service.js';
import { safeMessage } from '../../src/secrets.js';
import { configSnapshotSection } from './snapshot.js';

/** What the routes use: the service and the state-cache entry behind `app.config`. */
export interface ConfigRegistry {
  service: ConfigService;
  state: StateEntry<ConfigSnapshot>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Configuration for packs, from memory: `app.config.get<number>('exports.max_rows')`. */
    config: ConfigAccessor;
    configRegistry: ConfigRegistry;
  }
}

/** The scopes this pack's routes require; API keys can hold them while the pack is loaded. */
const scopes = {
  'config:read': 'Read configuration entries, history and the effective config',
  'config:write': 'Change configuration entries and roll them back',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * The config & environment registry (TZ): JSON values per key and environment, with history,
 * rollback and an effective view; secrets refused. Packs read it through `app.config`, held in
 * memory and refreshed on every instance through the state cache.
 */
export default definePack({
  name: 'config-registry',
  code: 'TZ',
  description: 'Config & environment registry: per-environment JSON entries, history and rollback, no secrets; app.config for packs',
  scopes,
  dependencies: [],
  async register(app) {
    const refusals = new Counter({
      name: 'valhalla_config_secret_refusals_total',
      help: 'Configuration writes refused because a key or value looked like a secret, by rule',
      labelNames: ['rule'],
      registers: [app.metrics],
    });
    const service = createConfigService({ db: app.db, onSecretRefused: (rules) => rules.forEach((rule) => refusals.inc({ rule })) });
    const { accessor, apply } = createConfigAccessor({
      environment: app.env.CONFIG_ENVIRONMENT,
      onListenerError: (key, err) => app.log.error({ configKey: key, err: { message: safeMessage(err) } }, 'config change listener failed'),
    });
    const state = app.stateCache.register(
      'config',
      async () => {
        const snapshot = toSnapshot(await service.snapshot());
        apply(snapshot);
        return snapshot;
      },
      new Map<string, ReadonlyMap<string, unknown>>() satisfies ConfigSnapshot,
    );
    new Gauge({
      name: 'valhalla_config_entries',
      help: 'Configuration entries held in memory, by environment',
      labelNames: ['environment'],
      registers: [app.metrics],
      collect() {
        this.reset();
        for (const [environment, n] of Object.entries(accessor.counts())) this.set({ environment }, n);
      },
    });
    app.decorate('config', accessor);
    app.snapshots.section(configSnapshotSection(service, app.stateCache, state));
    app.decorate('configRegistry', { service, state });
    app.overview.add('config', () => {
      const byEnvironment = accessor.counts();
      return { entries: Object.values(byEnvironment).reduce((a, b) => a + b, 0), byEnvironment, environment: accessor.environment };
    });
  },
  routes: async (app) => {
    await app.register(configRoutes(app.configRegistry));
  },
});
