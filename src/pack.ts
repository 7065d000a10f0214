import type { FastifyContextConfig, FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { createScopeCatalog, KERNEL_SCOPES, PACK_SCOPE_NAME, type Scope, type ScopeDescriptions } from './access.js';

/**
 * The pack contract. A pack is a folder `plugins/<name>/` whose `index.ts` default-exports
 * `definePack({...})`:
 * - `register` runs in the kernel's scope (through fastify-plugin): decorate services that other
 *   packs use, add cross-cutting hooks, define jobs and state-cache entries.
 * - `routes` runs encapsulated under the pack's name: every route it adds is stamped with
 *   `config.pack` (the route index and docs read it).
 * Packs talk to each other only through what `register` decorates, never through each
 * other's tables.
 */
export interface PackDefinition {
  /** Folder name; what `dependencies` and `PACKS_DISABLED` refer to. */
  name: string;
  /** The seed's two-letter code (TU, TV, ...). */
  code: string;
  description: string;
  dependencies?: string[];
  /**
   * The scopes this pack's routes require, with what each allows (`'widgets:read': 'Read
   * widgets'`); API keys can be granted them while the pack is loaded. Add them to the
   * `ScopeRegistry` type too (src/access.ts shows how) so routes naming them type-check.
   */
  scopes?: ScopeDescriptions;
  register?: (app: FastifyInstance) => Promise<void>;
  routes?: FastifyPluginAsync;
}

export interface Pack {
  readonly meta: Readonly<Required<Pick<PackDefinition, 'name' | 'code' | 'description' | 'dependencies' | 'scopes'>>>;
  readonly plugin: FastifyPluginAsync;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Name of the pack that registered the route (set by the kernel). */
    pack?: string;
    /**
     * Scope an API key needs for this route: the kernel's (src/access.ts) or one a loaded pack
     * declares in `definePack({ scopes })`; required unless `public`.
     */
    scope?: Scope;
    /** Route needs no API key (probes, docs, problem type documentation). */
    public?: boolean;
    /** `false`: never recorded as a span (probes scraped every few seconds). */
    trace?: boolean;
    /**
     * A control-plane write (config, flags, rate limits, deployments, retention): refused with
     * 423 while the change freeze is on, unless an `admin` caller sends an override (audited).
     */
    freeze?: boolean;
    /**
     * `false`: the read-only/maintenance shield never blocks this route (explicit opt-out).
     * `'read'`: a POST that only reads (a search, an evaluation): allowed in read-only mode like
     * a GET, blocked in maintenance like any other route.
     */
    shield?: boolean | 'read';
  }
}

/** A route's `config` with the URL template and method Fastify adds to it. */
export type RouteConfig = Readonly<FastifyContextConfig & { url?: string; method?: string | string[] }>;

declare module 'fastify' {
  interface FastifyRequest {
    /** The matched route's config, cached by the kernel's first onRequest hook; read it with `routeConfigOf`. */
    routeConfig: RouteConfig | null;
  }
}

/**
 * The matched route's config (`scope`, `public`, `url`, ...). Hooks read this instead of
 * `request.routeOptions.config`: Fastify builds a new twelve-field `routeOptions` object on every
 * read, and a request passes through a dozen hooks. Falls back to `routeOptions` for requests
 * answered before routing (a malformed URL).
 */
export function routeConfigOf(request: FastifyRequest): RouteConfig {
  return request.routeConfig ?? request.routeOptions.config;
}

export function definePack(def: PackDefinition): Pack {
  if (!/^[a-z][a-z0-9-]*$/.test(def.name)) throw new Error(`pack name '${def.name}' must be kebab-case`);
  const scopes = def.scopes ?? {};
  for (const scope of Object.keys(scopes)) {
    if (!PACK_SCOPE_NAME.test(scope) || Object.hasOwn(KERNEL_SCOPES, scope)) {
      throw new Error(`pack '${def.name}' declares scope '${scope}': a pack's scopes are '<area>:<action>' in lower-case kebab (e.g. 'widgets:read'), not one of the kernel's`);
    }
  }
  const meta = { name: def.name, code: def.code, description: def.description, dependencies: def.dependencies ?? [], scopes };
  const plugin = fp(
    async function pack(app: FastifyInstance) {
      if (def.register) await def.register(app);
      const routes = def.routes;
      if (routes) {
        await app.register(async function packRoutes(scope) {
          scope.addHook('onRoute', (route) => {
            route.config = { ...route.config, pack: def.name };
          });
          await scope.register(routes);
        });
      }
    },
    // Dependencies are checked by resolvePacks with clearer messages before Fastify sees them.
    { name: `pack:${def.name}`, fastify: '5.x' },
  );
  return { meta, plugin };
}

export class PackConfigError extends Error {
  override name = 'PackConfigError';
}

/**
 * Which packs to load, in list order, after `PACKS_DISABLED`. Fails fast, naming the pack,
 * when a disabled or unknown pack is needed by an enabled one, or listed after its dependant.
 */
export function resolvePacks(all: Pack[], disabledList: string): Pack[] {
  const names = new Set(all.map((p) => p.meta.name));
  const disabled = new Set(
    disabledList
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const name of disabled) {
    if (!names.has(name)) throw new PackConfigError(`PACKS_DISABLED names unknown pack '${name}' (known: ${[...names].join(', ')})`);
  }
  const enabled = all.filter((p) => !disabled.has(p.meta.name));
  const loaded = new Set<string>();
  for (const pack of enabled) {
    for (const dep of pack.meta.dependencies) {
      if (disabled.has(dep)) {
        throw new PackConfigError(`pack '${pack.meta.name}' needs pack '${dep}', which PACKS_DISABLED turns off; disable '${pack.meta.name}' too or enable '${dep}'`);
      }
      if (!names.has(dep)) throw new PackConfigError(`pack '${pack.meta.name}' needs pack '${dep}', which is not in the pack list`);
      if (!loaded.has(dep)) throw new PackConfigError(`pack '${pack.meta.name}' needs pack '${dep}', listed after it: move '${dep}' earlier in plugins/index.ts`);
    }
    loaded.add(pack.meta.name);
  }
  try {
    createScopeCatalog(enabled.map((p) => p.meta));
  } catch (err) {
    throw new PackConfigError((err as Error).message);
  }
  return enabled;
}
