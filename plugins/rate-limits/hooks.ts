import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Caller } from '../../src/access.js';
import type { Counter } from 'prom-client';
import { requestPath } from '../../src/error-handler.js';
import { ProblemError } from '../../src/problem.js';
import type { StateEntry } from '../../src/state-cache.js';
import { secondsToUtcMidnight, utcDay, type QuotaCounter } from './counters.js';
import {
  callerSubject,
  canonicalIp,
  fromRule,
  resolveLimit,
  routeRuleFor,
  type AppliedLimit,
  type CallerFacts,
  type Limit,
  type RouteTarget,
  type RuleIndex,
} from './rules.js';
import type { RateLimitRule, Status } from './schemas.js';
import type { CounterStore, WindowCount } from './stores.js';
import { safeMessage } from '../../src/secrets.js';
import { clientAddressText } from '../../src/ip-address.js';

/** What a listener hears about each request refused with 429. */
export interface ExceededEvent {
  kind: 'rate-limited' | 'quota-exceeded';
  scope: string;
  policy: string;
  ruleId: number | null;
  subject: string;
  ip: string;
  method: string;
  path: string;
  at: Date;
}
export type ExceededListener = (event: ExceededEvent) => void;

export interface LimiterDeps {
  rules: StateEntry<RuleIndex<RateLimitRule>>;
  /** Told of every store failure (the Redis store drops a connection that timed out). */
  onStoreError?: (err: unknown) => void;
  defaultLimit: Limit | null;
  /** @fastify/rate-limit's counter store (memory or Redis). */
  counters: CounterStore;
  quota: QuotaCounter;
  store: 'redis' | 'memory';
  limited: Counter<'scope'>;
  storeErrors: Counter<'counter'>;
  listeners: ReadonlySet<ExceededListener>;
  isExempt(request: FastifyRequest): boolean;
  log: FastifyBaseLogger;
}

/** Decoded path without the query string, so `/system/%66lags` cannot slip past `/system/flags*`. */
function targetOf(request: FastifyRequest): RouteTarget {
  const raw = requestPath(request.url);
  let path = raw;
  if (raw.includes('%')) {
    try {
      path = decodeURI(raw);
    } catch {
      // undecodable: matched as sent (the router answers it with 400 anyway)
    }
  }
  return { method: request.method, path };
}

export function callerFacts(request: FastifyRequest): CallerFacts {
  // Ports and zone ids a trusted proxy wrote are dropped: one client, one counter.
  const ip = clientAddressText(request.ip);
  const caller = request.caller;
  return {
    ip,
    ipSubject: ip === null ? null : ip.includes(':') ? normalizeIP(ip) : ip,
    keyId: caller?.keyId ?? null,
    clientId: caller?.clientId ?? null,
    clientLimit: caller?.rateLimit ?? null,
  };
}

/** `x-ratelimit-*` (what most clients read) and the IETF draft's `RateLimit-Policy`/`RateLimit`. */
function setHeaders(reply: FastifyReply, limit: AppliedLimit, remaining: number, resetSeconds: number): void {
  reply.header('x-ratelimit-limit', limit.max);
  reply.header('x-ratelimit-remaining', remaining);
  reply.header('x-ratelimit-reset', resetSeconds);
  reply.header('ratelimit-policy', limit.policyHeader);
  reply.header('ratelimit', `"${limit.policy}";r=${remaining};t=${resetSeconds}`);
}

/**
 * The per-request limiter: resolve the rule from memory, count through @fastify/rate-limit's
 * store, then the caller's daily quota. A store that fails (Redis down or slow) lets the request
 * through: one log line per 10 s and `valhalla_rate_limit_store_errors_total` say so. Limiting
 * is a protection, not a dependency worth an outage.
 */
export function createLimiter(deps: LimiterDeps) {
  const { rules, defaultLimit, counters, quota, limited, storeErrors, listeners, log } = deps;
  let lastErrorLog = 0;
  const storeFailed = (counter: 'requests' | 'quota', err: unknown) => {
    storeErrors.inc({ counter });
    deps.onStoreError?.(err);
    const now = Date.now();
    if (now - lastErrorLog >= 10_000) {
      lastErrorLog = now;
      log.warn({ counter, store: deps.store, err: { message: safeMessage(err) } }, 'rate-limit store unavailable; requests are let through');
    }
  };
  const tell = (event: ExceededEvent) => {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch {
        // a listener must never turn a 429 into a 500
      }
    }
  };

  /** Answers 429 for a request over its limit. */
  function refuse(request: FastifyRequest, reply: FastifyReply, limit: AppliedLimit, ttlInSeconds: number): void {
    const retryAfter = Math.max(1, ttlInSeconds);
    limited.inc({ scope: limit.scope });
    const target = targetOf(request);
    tell({ kind: 'rate-limited', scope: limit.scope, policy: limit.policy, ruleId: limit.ruleId, subject: limit.subject, ip: request.ip, method: target.method, path: target.path, at: new Date() });
    reply.problem('rate-limited', {
      detail: `Rate limit of ${limit.max} requests per ${limit.windowSeconds} s exceeded; retry in ${retryAfter} s.`,
      extensions: { policy: limit.policy, limit: limit.max, windowSeconds: limit.windowSeconds, retryAfter },
      headers: { 'retry-after': String(retryAfter) },
    });
  }

  /** The caller's daily quota, when it has one; `done` is called unless the request was answered. */
  function countQuota(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    const caller = request.caller;
    if (caller === null || caller.dailyQuota === null) return done();
    const quotaLimit = caller.dailyQuota;
    const now = new Date();
    quota.incr(caller.clientId, now).then(
      (used) => {
        if (used <= quotaLimit) return done();
        const retryAfter = secondsToUtcMidnight(now);
        limited.inc({ scope: 'quota' });
        const target = targetOf(request);
        tell({ kind: 'quota-exceeded', scope: 'quota', policy: `quota-${caller.clientId}`, ruleId: null, subject: `client:${caller.clientId}`, ip: request.ip, method: target.method, path: target.path, at: now });
        reply.problem('quota-exceeded', {
          detail: `Daily quota of ${quotaLimit} requests used; it resets at midnight UTC, in ${retryAfter} s.`,
          extensions: { quota: quotaLimit, day: utcDay(now), retryAfter },
          headers: { 'retry-after': String(retryAfter), 'x-quota-limit': String(quotaLimit), 'x-quota-remaining': '0', 'x-quota-reset': String(retryAfter) },
        });
      },
      (err: unknown) => {
        storeFailed('quota', err);
        done();
      },
    );
  }

  /**
   * The limit a request counts against. Without route rules it depends only on the caller and
   * its address, so it is kept per caller (callers are rebuilt, and this forgotten, whenever keys
   * or clients change) for as long as the rule index and the address stay the same.
   */
  const resolved = new WeakMap<Caller, { index: RuleIndex; ip: string; limit: AppliedLimit | null }>();
  function limitFor(request: FastifyRequest, index: RuleIndex): AppliedLimit | null {
    const caller = request.caller;
    if (caller === null || index.routes.length > 0) {
      return resolveLimit(index, callerFacts(request), index.routes.length > 0 ? targetOf(request) : null, defaultLimit);
    }
    const ip = request.ip;
    const hit = resolved.get(caller);
    if (hit !== undefined && hit.index === index && hit.ip === ip) return hit.limit;
    const limit = resolveLimit(index, callerFacts(request), null, defaultLimit);
    resolved.set(caller, { index, ip, limit });
    return limit;
  }

  /**
   * The onRequest hook, callback style and promise-free on the common path: exempt routes
   * (probes, opt-outs) return at once; the rest resolve their limit from memory and are counted
   * in the store, whose memory variant answers synchronously. A 429 answers without `done`.
   * A store that fails lets the request through (see storeFailed).
   */
  function onRequest(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    if (deps.isExempt(request)) return done();
    const limit = limitFor(request, rules.get());
    if (limit === null) return countQuota(request, reply, done);
    counters.incr(
      limit.counterKey,
      (err: Error | null, result: WindowCount | null) => {
        if (err !== null || result === null) {
          storeFailed('requests', err);
          return countQuota(request, reply, done);
        }
        const ttlInSeconds = Math.ceil(result.ttl / 1000);
        setHeaders(reply, limit, Math.max(0, limit.max - result.current), ttlInSeconds);
        if (result.current > limit.max) return refuse(request, reply, limit, ttlInSeconds);
        countQuota(request, reply, done);
      },
      limit.windowSeconds * 1000,
      limit.max,
    );
  }

  /** Reads a counter without counting it (the status endpoint). */
  function peek(limit: AppliedLimit): Promise<Status['limits'][number]> {
    return new Promise((resolve, reject) => {
      counters.read(
        limit.counterKey,
        (err, r) => {
          if (err !== null || r === null) return reject(err ?? new Error('rate-limit store: empty read'));
          const used = r.current;
          resolve({
            policy: limit.policy,
            scope: limit.scope,
            ruleId: limit.ruleId,
            route: limit.route,
            subject: limit.subject,
            max: limit.max,
            windowSeconds: limit.windowSeconds,
            used,
            remaining: Math.max(0, limit.max - used),
            resetSeconds: used === 0 ? 0 : Math.ceil(Math.max(0, r.ttl) / 1000),
          });
        },
        limit.windowSeconds * 1000,
        limit.max,
      );
    });
  }

  /**
   * Current usage for a subject (`ip:…`, `api_key:…`, `client:…`) or, with none, for the caller:
   * the limit its requests count against where no route rule applies, then each route rule that
   * would apply to it, then its daily quota.
   */
  async function status(request: FastifyRequest, key: string | undefined): Promise<Status> {
    let facts: CallerFacts;
    let quotaLimit: number | null = null;
    if (key === undefined) {
      facts = callerFacts(request);
      quotaLimit = request.caller?.dailyQuota ?? null;
    } else {
      const colon = key.indexOf(':');
      const kind = key.slice(0, colon);
      const value = key.slice(colon + 1);
      const ip = kind === 'ip' ? canonicalIp(value) : null;
      if (kind === 'ip' && ip === null) {
        throw new ProblemError('validation-failed', { detail: 'The key is not valid.', errors: [{ in: 'querystring', pointer: '#/key', message: 'is not an IP address' }] });
      }
      facts = {
        ip,
        ipSubject: ip === null ? null : ip.includes(':') ? normalizeIP(ip) : ip,
        keyId: kind === 'api_key' ? value : null,
        clientId: kind === 'client' ? Number(value) : null,
        clientLimit: null,
      };
    }
    const index = rules.get();
    const limits: AppliedLimit[] = [];
    const head = resolveLimit(index, facts, null, defaultLimit);
    if (head) limits.push(head);
    const caller = callerSubject(facts);
    if (caller !== null) {
      for (const { rule, route } of index.routes.slice(0, 100)) {
        // The route rule counts for this subject only where nothing more specific wins. An empty
        // method matches only method-less patterns, so each pattern is tried on its own.
        const probe = resolveLimit(index, facts, { method: route.method ?? '', path: route.path }, defaultLimit);
        if (probe?.ruleId === rule.id) limits.push(fromRule(rule, caller));
      }
    }
    const usage = [];
    for (const limit of limits) usage.push(await fromStore(peek(limit)));

    const clientId = facts.clientId;
    let quotaUsage: Status['quota'] = null;
    if (clientId !== null) {
      const now = new Date();
      const used = await fromStore(quota.read(clientId, now));
      quotaUsage = { limit: quotaLimit, used, remaining: quotaLimit === null ? null : Math.max(0, quotaLimit - used), day: utcDay(now), resetSeconds: secondsToUtcMidnight(now) };
    }
    return { subject: key ?? caller ?? 'unknown', store: deps.store, limits: usage, quota: quotaUsage };
  }

  /**
   * A read the caller asked for: unlike counting (which fails open), a store that is down or
   * slow answers 503 `counter-store-unavailable`, never a 500; the cause is logged, not sent.
   */
  async function fromStore<T>(read: Promise<T>): Promise<T> {
    try {
      return await read;
    } catch (err) {
      deps.onStoreError?.(err);
      log.warn({ err: { message: safeMessage(err) } }, 'rate-limit store read failed; answering 503');
      throw new ProblemError('counter-store-unavailable', {
        detail: `The ${deps.store === 'redis' ? 'shared counter store (Redis)' : 'counter store'} did not answer; retry later.`,
        headers: { 'retry-after': '5' },
      });
    }
  }

  /** Whether requests to a route are limited and by which rule (for the route index). */
  function describeRoute(method: string, url: string, exempt: boolean): { limited: boolean; rule: string | null } {
    if (exempt) return { limited: false, rule: null };
    const index = rules.get();
    const per = (l: Limit) => `${l.max} per ${l.windowSeconds} s`;
    const routeRule = routeRuleFor(index, { method: method.toUpperCase(), path: url });
    if (routeRule) return { limited: true, rule: `rule-${routeRule.id} (route ${routeRule.route}: ${per(routeRule)} per caller)` };
    if (index.global) return { limited: true, rule: `rule-${index.global.id} (global: ${per(index.global)} per caller)` };
    if (defaultLimit) return { limited: true, rule: `default (${per(defaultLimit)} per caller)` };
    // Rules naming keys, clients or addresses may still apply to some callers.
    const anyCallerRule = index.rules.some((r) => r.scope !== 'route');
    return { limited: anyCallerRule, rule: null };
  }

  return { onRequest, status, describeRoute };
}
export type Limiter = ReturnType<typeof createLimiter>;

const LIMIT_HEADERS = ['RateLimit', 'RateLimit-Policy', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset'];
const QUOTA_HEADERS = ['X-Quota-Limit', 'X-Quota-Remaining', 'X-Quota-Reset'];

/**
 * The OpenAPI side of the limiter: every route but the opted-out ones (`config.rateLimit: false`)
 * can answer 429 and carries the limit headers when a limit applies; routes with a key also
 * count against the client's daily quota.
 */
export function documentRateLimits(app: FastifyInstance): void {
  const headers: Record<string, string> = {
    RateLimit: 'IETF draft: `"<policy>";r=<remaining>;t=<seconds to reset>`, when a limit applies.',
    'RateLimit-Policy': 'IETF draft: `"<policy>";q=<max>;w=<window seconds>`, when a limit applies.',
    'X-RateLimit-Limit': 'Requests allowed in the window, when a limit applies.',
    'X-RateLimit-Remaining': 'Requests left in the window, when a limit applies.',
    'X-RateLimit-Reset': 'Seconds until the window resets, when a limit applies.',
    'X-Quota-Limit': "The client's requests per UTC day.",
    'X-Quota-Remaining': 'Requests left today (0 on this answer).',
    'X-Quota-Reset': 'Seconds until midnight UTC, when the quota resets.',
  };
  for (const [name, description] of Object.entries(headers)) {
    app.apiDocs.header(name, { description, schema: name.startsWith('RateLimit') ? { type: 'string' } : { type: 'integer', minimum: 0 } });
  }
  app.apiDocs.describe(({ config }) => {
    if (config.rateLimit === false) return undefined;
    return {
      problems: [
        { kind: 'rate-limited', headers: ['Retry-After', ...LIMIT_HEADERS] },
        ...(config.scope === undefined ? [] : [{ kind: 'quota-exceeded' as const, headers: ['Retry-After', ...QUOTA_HEADERS] }]),
      ],
      successHeaders: LIMIT_HEADERS,
    };
  });
}
