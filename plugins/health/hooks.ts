import { createHash, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import underPressure, { type FastifyUnderPressureOptions } from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Histogram, type Registry } from 'prom-client';
import type { Env } from '../../src/env.js';
import type { PressureState } from './service.js';
import { routeConfigOf } from '../../src/pack.js';
import { ownValue } from '../../src/own-property.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Per-route override read by @fastify/under-pressure; `letThroughUnderPressure` exempts a route. */
    pressureHandler?: FastifyUnderPressureOptions['pressureHandler'];
  }
}

/** Route label of requests no route matched (404/405), so scanners cannot grow the label set. */
export const UNMATCHED_ROUTE = '<unmatched>';

export interface RequestTotals {
  /** Responses sent since the instance started. */
  requests: number;
  /** 5xx responses since the instance started. */
  serverErrors: number;
}

/**
 * prom-client's gauges named like counters (`promtool check metrics`: "non-counter metrics should
 * not have \"_total\" suffix"). Each is the sum of its per-type sibling, which stays
 * (`sum(nodejs_active_handles)` gives the total).
 */
export const GAUGES_NAMED_AS_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

// collectDefaultMetrics starts observers and timers for each call: once per registry.
const withDefaultMetrics = new WeakSet<Registry>();
export function collectDefaultMetricsOnce(registry: Registry): void {
  if (withDefaultMetrics.has(registry)) return;
  withDefaultMetrics.add(registry);
  collectDefaultMetrics({ register: registry });
  for (const name of GAUGES_NAMED_AS_COUNTERS) registry.removeSingleMetric(name);
}

/**
 * `http_request_duration_seconds` by method, route template and status, observed when each
 * response finishes (Fastify's own `elapsedTime`, no extra clock), plus the running totals
 * that metrics snapshots record.
 */
export function observeHttpRequests(app: FastifyInstance): RequestTotals {
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from receiving a request to finishing its response, by route template',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [app.metrics],
  });
  const totals: RequestTotals = { requests: 0, serverErrors: 0 };
  // One labelled child per (route, method, status), looked up by reference instead of having
  // prom-client hash a label object on every response. The set is bounded: route templates
  // (not raw paths) times methods times statuses.
  type Child = ReturnType<typeof duration.labels>;
  const children = new Map<string, Map<string, Child>>();
  const childFor = (route: string, method: string, status: number): Child => {
    let byRoute = children.get(route);
    if (!byRoute) children.set(route, (byRoute = new Map()));
    const key = `${method} ${status}`;
    let child = byRoute.get(key);
    if (!child) byRoute.set(key, (child = duration.labels({ method, route, status_code: status })));
    return child;
  };
  app.addHook('onResponse', (request, reply, done) => {
    totals.requests++;
    const status = reply.statusCode;
    if (status >= 500) totals.serverErrors++;
    childFor(routeConfigOf(request).url ?? UNMATCHED_ROUTE, request.method, status).observe(reply.elapsedTime / 1000);
    done();
  });
  return totals;
}

/** Route config that keeps a route answering while the instance sheds load (/live, /ready, /metrics). */
export const letThroughUnderPressure = (): void => {};

const PRESSURE_DETAIL: Record<string, string> = {
  eventLoopDelay: 'the event loop is delayed beyond PRESSURE_MAX_EVENT_LOOP_DELAY_MS',
  heapUsedBytes: 'heap use is above PRESSURE_MAX_HEAP_BYTES',
  rssBytes: 'resident memory is above PRESSURE_MAX_RSS_BYTES',
};

/** How often @fastify/under-pressure samples memory and event-loop delay (its default, made explicit). */
const SAMPLE_INTERVAL_MS = 1000;

/**
 * Load shedding with @fastify/under-pressure: past a limit every route answers 503
 * `under-pressure` with `Retry-After`, except those whose config lets them through. There is
 * deliberately no `healthCheck` option: it would fail every route, probes included, whenever
 * the database is slow; the database check belongs to /ready alone.
 *
 * The event-loop samples taken until one full interval after start-up measure start-up itself
 * (schema compilation blocks the loop for a second or more on a busy machine), not load: they
 * are ignored, so a fresh instance neither sheds its first requests nor fails /ready for it.
 * Returns the current pressure state for /ready and /system/health.
 */
export async function shedLoadUnderPressure(app: FastifyInstance, env: Env): Promise<() => PressureState> {
  const shed = new Counter({
    name: 'valhalla_load_shed_total',
    help: 'Requests answered 503 under-pressure, by the limit that was exceeded',
    labelNames: ['reason'],
    registers: [app.metrics],
  });
  const retryAfter = env.PRESSURE_RETRY_AFTER_SECONDS;
  let readyAt = Number.POSITIVE_INFINITY;
  app.addHook('onReady', async () => {
    readyAt = performance.now();
  });
  const startingUp = () => performance.now() - readyAt < 2 * SAMPLE_INTERVAL_MS;

  /** The limit exceeded now, in under-pressure's words, or undefined. */
  function exceeded(): string | undefined {
    const usage = app.memoryUsage();
    if (env.PRESSURE_MAX_EVENT_LOOP_DELAY_MS > 0 && usage.eventLoopDelay > env.PRESSURE_MAX_EVENT_LOOP_DELAY_MS && !startingUp()) return 'eventLoopDelay';
    if (env.PRESSURE_MAX_HEAP_BYTES > 0 && usage.heapUsed > env.PRESSURE_MAX_HEAP_BYTES) return 'heapUsedBytes';
    if (env.PRESSURE_MAX_RSS_BYTES > 0 && usage.rssBytes > env.PRESSURE_MAX_RSS_BYTES) return 'rssBytes';
    return undefined;
  }

  await app.register(underPressure, {
    maxEventLoopDelay: env.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
    maxHeapUsedBytes: env.PRESSURE_MAX_HEAP_BYTES,
    maxRssBytes: env.PRESSURE_MAX_RSS_BYTES,
    sampleInterval: SAMPLE_INTERVAL_MS,
    retryAfter,
    pressureHandler(_request, reply, type) {
      const reason = type === 'eventLoopDelay' && startingUp() ? exceeded() : type;
      if (reason === undefined) return; // lets the request through
      shed.inc({ reason });
      // Answered here rather than thrown: a shed request is not a server error to record.
      reply.problem('under-pressure', {
        detail: `The instance is shedding load: ${ownValue(PRESSURE_DETAIL, reason) ?? reason}. Retry after ${retryAfter} s.`,
        headers: { 'retry-after': String(retryAfter) },
      });
    },
  });
  return () => {
    const usage = app.memoryUsage();
    return {
      underPressure: exceeded() !== undefined,
      eventLoopDelayMs: usage.eventLoopDelay,
      heapUsedBytes: usage.heapUsed,
      rssBytes: usage.rssBytes,
    };
  };
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** `Authorization: Bearer <token>` compared in constant time (hashing first evens out the lengths). */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const presented = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '')?.[1];
  if (presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(token));
}

/**
 * The OpenAPI side of this pack's hooks: /metrics takes METRICS_TOKEN when one is set, and with a
 * pressure limit set every route not let through may answer 503.
 */
export function documentHealthHooks(app: FastifyInstance, env: Env): void {
  if (env.METRICS_TOKEN !== undefined) {
    // Answered before the api-keys pack's rule (health loads first): /metrics takes its own token.
    app.apiDocs.securityScheme('metricsToken', { type: 'http', scheme: 'bearer', description: 'The METRICS_TOKEN as `Authorization: Bearer <token>`; /metrics only.' });
    app.apiDocs.describe(({ url }) => (url === '/metrics' ? { security: [{ metricsToken: [] }] } : undefined));
  }
  const shedding = env.PRESSURE_MAX_EVENT_LOOP_DELAY_MS > 0 || env.PRESSURE_MAX_HEAP_BYTES > 0 || env.PRESSURE_MAX_RSS_BYTES > 0;
  if (!shedding) return;
  app.apiDocs.describe(({ config }) => (config.pressureHandler === undefined ? { problems: [{ kind: 'under-pressure', headers: ['Retry-After'] }] } : undefined));
}
