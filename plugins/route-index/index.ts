import type { FastifyInstance } from 'fastify';
import type { RouteEntry } from '../../src/kernel.js';
import { definePack } from '../../src/pack.js';
import { routeIndexRoutes } from './routes.js';
import type { RouteInfo } from './schemas.js';
import { createRouteIndexService, describeRoute, type RouteIndexService } from './service.js';
import { safeMessage } from '../../src/secrets.js';

export interface RouteIndex {
  service: RouteIndexService;
  /** This instance's routes as the index shows them, from memory. */
  routes(): RouteInfo[];
}

declare module 'fastify' {
  interface FastifyInstance {
    routeIndex: RouteIndex;
  }
}

/**
 * Whether the rate limiter counts a route. The rate-limits pack (UC), when loaded and offering
 * `describeRoute(method, url)`, answers for its current rules; a loaded limiter without it
 * counts every route but those with `config.rateLimit: false` (@fastify/rate-limit's opt-out);
 * with no rate-limits pack nothing is counted.
 */
export function rateLimitedBy(app: FastifyInstance): (entry: RouteEntry) => boolean {
  if (!app.hasDecorator('rateLimits')) return () => false;
  const limiter: unknown = Reflect.get(app, 'rateLimits');
  const describe: unknown = typeof limiter === 'object' && limiter !== null ? Reflect.get(limiter, 'describeRoute') : undefined;
  if (typeof describe === 'function') {
    return (entry) => {
      const described: unknown = Reflect.apply(describe, limiter, [entry.method, entry.url]);
      if (typeof described === 'boolean') return described;
      if (typeof described !== 'object' || described === null) return false;
      const limited: unknown = Reflect.get(described, 'limited');
      return limited === undefined ? true : limited === true;
    };
  }
  return (entry) => Reflect.get(entry.config, 'rateLimit') !== false;
}

/**
 * TY: the route index. `GET /system/routes` lists this instance's routes from the kernel's
 * route catalogue (memory only); at start the first instance of each version records them, so
 * operators can diff what changed between deployments.
 */
export default definePack({
  name: 'route-index',
  code: 'TY',
  description: 'Route index: every route with its pack, scope, shield and rate limit, recorded per version for diffs between deployments',
  async register(app) {
    const service = createRouteIndexService({ db: app.db });
    const rateLimited = rateLimitedBy(app);
    const routes = () => app.routeCatalog.map((entry) => describeRoute(entry, rateLimited));
    app.decorate('routeIndex', { service, routes });

    // The kernel's own onReady hook (registered first) has filled the catalogue by now.
    app.addHook('onReady', async () => {
      try {
        const recorded = await service.record(app.lifecycle.version, app.lifecycle.instanceId, routes());
        if (recorded) app.log.info({ version: app.lifecycle.version, routes: app.routeCatalog.length }, 'route index recorded for this version');
      } catch (err) {
        // Not worth refusing to start over: the next instance of this version records it.
        app.log.warn({ err: { message: safeMessage(err) } }, 'could not record the route index');
      }
    });
  },
  routes: async (app) => {
    await app.register(routeIndexRoutes(app.routeIndex));
  },
});
