import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import type { StateEntry } from '../../src/state-cache.js';
import { templateItemRoutes } from './routes.js';
import { createTemplateItemService, type TemplateItemService } from './service.js';

/**
 * What this pack offers other packs (they use `app.templateItems`, never the table).
 * `hasName` is the hot-path pattern: answered from memory on every instance, refreshed through
 * the state cache (NOTIFY on every write, periodic reload as a safety net).
 */
export interface TemplateItems {
  service: TemplateItemService;
  names: StateEntry<ReadonlySet<string>>;
  hasName(name: string): boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    templateItems: TemplateItems;
  }
}

/** The scopes this pack's routes require; API keys can hold them while the pack is loaded. */
const scopes = {
  'template:read': 'Read template items',
  'template:write': 'Create, change and delete template items',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * The template pack (XX): template items with full CRUD, each write going through
 * `app.writeThrough` (audited and notified in its transaction), and their names held in memory
 * for the hot path. docs/packs.md explains each part.
 */
export default definePack({
  name: 'template',
  code: 'XX',
  description: 'Template items: CRUD, audited writes and hot-path state (describe your pack here)',
  scopes,
  dependencies: [],
  // Root scope: decorate what other packs may use, register state-cache entries, jobs, hooks.
  async register(app) {
    const service = createTemplateItemService({ db: app.db });
    const names = app.stateCache.register('template-items', service.allNames, new Set<string>());
    app.decorate('templateItems', { service, names, hasName: (name: string) => names.get().has(name) });
  },
  // Encapsulated scope: every route here is stamped with `config.pack = 'template'`.
  routes: async (app) => {
    await app.register(templateItemRoutes(app.templateItems));
  },
});
