import { safeMessage } from '../../src/secrets.js';
import rateLimitPlugin from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import { Counter } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import { ProblemError } from '../../src/problem.js';
import type { StateEntry } from '../../src/state-cache.js';
import { closeRedis, createRedisClient, memoryQuotaCounter, reconnectAfterTimeout, redisQuotaCounter, waitForRedis } from './counters.js';
import { createLimiter, documentRateLimits, type ExceededListener, type Limiter } from './hooks.js';
import { rateLimitRoutes } from './routes.js';
import { memoryCounterStore, redisCounterStore } from './stores.js';
import { buildRuleIndex, type RuleIndex } from './rules.js';
import type { RateLimitRule } from './schemas.js';
import { createRateLimitService, type RateLimitService } from './service.js';
import { routeConfigOf } from '../../src/pack.js';
import { ruleSnapshotSection } from './snapshot.js';

/** What this pack offers other packs (`app.rateLimits`). */
export interface RateLimits {
  service: RateLimitService;
  /** The enabled rules, indexed; refreshed on every instance through the state cache. */
  rules: StateEntry<RuleIndex<RateLimitRule>>;
  store: 'redis' | 'memory';
  status: Limiter['status'];
  /** Whether requests to a route are limited, and by which rule when that does not depend on the caller (route index). */
  describeRoute(method: string, url: string): { limited: boolean; rule: string | null };
  /**
   * Extension point: told about every 429 (rate limit or quota). The security pack can use it
   * to escalate repeated 429s from one address to a temporary blocklist rule (origin
   * `rate_limit`); nothing subscribes here. Returns the unsubscribe function.
   */
  onExceeded(listener: ExceededListener): () => void;
}

declare module 'fastify' {
  interface FastifyInstance {
    rateLimits: RateLimits;
  }
}

/** Counters kept by the in-memory store (an LRU): enough for many active callers per instance. */
const MEMORY_COUNTERS = 100_000;

/** The scopes this pack's routes require; API keys can hold them while the pack is loaded. */
const scopes = {
  'rate-limits:read': 'Read rate-limit rules and current usage',
  'rate-limits:write': 'Create, change and delete rate-limit rules',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * UC: rate limits and daily quotas on @fastify/rate-limit. Rules live in `rate_limits` and in
 * memory on every instance; counters live in Redis when REDIS_URL is set (shared by every
 * instance), else in this process. The limiter is an onRequest hook in pack-list order: after
 * authentication (so the caller is known), before the read-only shield; 404s are limited too.
 */
export default definePack({
  name: 'rate-limits',
  code: 'UC',
  description: 'Rate limits by API key, client, route, IP or globally (most specific rule wins), per-client daily quotas, Redis-shared counters',
  scopes,
  async register(app) {
    const env = app.env;
    const service = createRateLimitService({ db: app.db });
    const rules = app.stateCache.register('rate-limits', service.loadIndex, buildRuleIndex<RateLimitRule>([]));
    const log = app.log.child({ pack: 'rate-limits' });

    let redisErrorLogged = 0;
    const redis = env.REDIS_URL
      ? createRedisClient(env.REDIS_URL, env.RATE_LIMIT_REDIS_TIMEOUT_MS, (err) => {
          if (Date.now() - redisErrorLogged < 10_000) return;
          redisErrorLogged = Date.now();
          log.warn({ err: { message: safeMessage(err) } }, 'redis connection error; rate limits fail open until it returns');
        })
      : null;
    if (redis) {
      app.addHook('onClose', async () => closeRedis(redis));
      if (!(await waitForRedis(redis, 2000))) log.warn('redis not reachable at start; rate limits fail open until it is');
    }
    const store = redis ? 'redis' : 'memory';

    // The limiter below counts every request itself through @fastify/rate-limit's stores
    // (stores.ts). The plugin stays registered, with `global: false` so it adds no hooks of its
    // own, only for a route that sets its own `config.rateLimit: {...}`: that route then also
    // gets the plugin's per-address limiter, and its 429 is still a problem.
    await app.register(rateLimitPlugin, {
      global: false,
      max: env.RATE_LIMIT_DEFAULT_MAX,
      timeWindow: env.RATE_LIMIT_DEFAULT_WINDOW_SECONDS * 1000,
      cache: MEMORY_COUNTERS,
      // Fail open like the limiter below: a Redis outage never turns a request into a 500.
      skipOnError: true,
      ...(redis && { redis, nameSpace: env.RATE_LIMIT_REDIS_PREFIX }),
      errorResponseBuilder: (_request, context) => new ProblemError('rate-limited', { detail: `Rate limit exceeded; retry in ${context.after}.` }),
    });

    const limited = new Counter({
      name: 'valhalla_rate_limited_total',
      help: 'Requests refused with 429, by the scope of the rule that applied (default, quota for daily quotas)',
      labelNames: ['scope'],
      registers: [app.metrics],
    });
    const storeErrors = new Counter({
      name: 'valhalla_rate_limit_store_errors_total',
      help: 'Requests let through because the counter store (Redis) failed or timed out',
      labelNames: ['counter'],
      registers: [app.metrics],
    });

    // A route opts out with `config: { rateLimit: false }` (the probes do); the route index asks
    // by method and URL, answered from the route catalogue once it is complete.
    let optedOut: ReadonlySet<string> | null = null;
    const exemptRoute = (method: string, url: string) => {
      if (optedOut === null && app.routeCatalog.length > 0) {
        optedOut = new Set(app.routeCatalog.filter((r) => r.config.rateLimit === false).map((r) => `${r.method} ${r.url}`));
      }
      return optedOut?.has(`${method.toUpperCase()} ${url}`) ?? false;
    };

    const listeners = new Set<ExceededListener>();
    const limiter = createLimiter({
      rules,
      defaultLimit: env.RATE_LIMIT_DEFAULT_MAX > 0 ? { max: env.RATE_LIMIT_DEFAULT_MAX, windowSeconds: env.RATE_LIMIT_DEFAULT_WINDOW_SECONDS } : null,
      counters: redis ? redisCounterStore(redis, env.RATE_LIMIT_REDIS_PREFIX) : memoryCounterStore(MEMORY_COUNTERS),
      quota: redis ? redisQuotaCounter(redis, env.RATE_LIMIT_REDIS_PREFIX) : memoryQuotaCounter(),
      store,
      ...(redis && { onStoreError: reconnectAfterTimeout(redis) }),
      limited,
      storeErrors,
      listeners,
      isExempt: (request) => routeConfigOf(request).rateLimit === false,
      log,
    });
    app.addHook('onRequest', limiter.onRequest);
    documentRateLimits(app);

    app.snapshots.section(ruleSnapshotSection(service, app.stateCache, rules));
    app.decorate('rateLimits', {
      service,
      rules,
      store,
      status: limiter.status,
      describeRoute: (method: string, url: string) => limiter.describeRoute(method, url, exemptRoute(method, url)),
      onExceeded(listener: ExceededListener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    } satisfies RateLimits);

    app.overview.add('rateLimits', () => ({
      enabledRules: rules.get().rules.length,
      store,
      defaultLimit: env.RATE_LIMIT_DEFAULT_MAX > 0 ? `${env.RATE_LIMIT_DEFAULT_MAX} per ${env.RATE_LIMIT_DEFAULT_WINDOW_SECONDS} s` : null,
    }));
  },
  routes: async (app) => {
    await app.register(rateLimitRoutes(app.rateLimits));
  },
});
