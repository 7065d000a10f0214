import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { FaultyProxy } from '../../test/helpers/faulty-proxy.js';
import { asCaller, burst, packsWithTestCaller } from './test-support.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether anything answers on Redis' port (the Redis tests are skipped when not). */
async function redisReachable(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: u.hostname, port: Number(u.port || 6379), timeout: 500 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
const redisUp = await redisReachable(REDIS_URL);

// A prefix of this run's own, so parallel test files (and earlier runs) never share counters.
const PREFIX = `valhalla-test:${process.pid}:${randomBytes(4).toString('hex')}:`;

describe.skipIf(!redisUp)('rate limits shared through Redis (two instances)', () => {
  let t: TestApp;
  let a: FastifyInstance;
  let b: FastifyInstance;
  let redis: Redis;
  beforeAll(async () => {
    t = await createTestApp({ TRACE_SAMPLE_RATE: 0, REDIS_URL, RATE_LIMIT_REDIS_PREFIX: PREFIX }, { packs: packsWithTestCaller() });
    a = t.app;
    b = await t.another();
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    if (redis) {
      const keys = await redis.keys(`${PREFIX}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
    await t?.close();
  });

  it('enforces one combined count across both instances', async () => {
    expect(a.rateLimits.store).toBe('redis');
    const res = await t.inject({ method: 'POST', url: '/system/rate-limits', payload: { scope: 'ip', match: '10.20.0.1', max: 5, windowSeconds: 60 } });
    expect(res.statusCode).toBe(201);
    await expect.poll(() => b.rateLimits.rules.get().ip.has('10.20.0.1'), { timeout: 1000, interval: 10 }).toBe(true);

    expect(await burst(a, '/shared', '10.20.0.1', 3)).toEqual([404, 404, 404]);
    expect(await burst(b, '/shared', '10.20.0.1', 2)).toEqual([404, 404]);
    const sixth = await b.inject({ method: 'GET', url: '/shared', remoteAddress: '10.20.0.1' });
    expect(sixth.statusCode).toBe(429);
    expect(sixth.json()).toMatchObject({ type: '/problems/rate-limited', limit: 5 });
    expect((await a.inject({ method: 'GET', url: '/shared', remoteAddress: '10.20.0.1' })).statusCode).toBe(429);

    // The counter is in Redis under this run's prefix, and the status endpoint reads it from either instance.
    const keys = await redis.keys(`${PREFIX}rule-*`);
    expect(keys.some((k) => k.endsWith(':ip:10.20.0.1'))).toBe(true);
    const status = (await t.inject({ method: 'GET', url: '/system/rate-limits/status?key=ip:10.20.0.1' }, b)).json();
    expect(status).toMatchObject({ store: 'redis' });
    expect(status.limits[0]).toMatchObject({ max: 5, used: 7, remaining: 0 });
  });

  it('counts the daily quota across both instances', async () => {
    const caller = asCaller({ clientId: 7001, keyId: 'REDISQUOTA01', dailyQuota: 4 });
    expect(await burst(a, '/quota', '10.20.0.2', 2, { headers: caller })).toEqual([404, 404]);
    expect(await burst(b, '/quota', '10.20.0.2', 3, { headers: caller })).toEqual([404, 404, 429]);
    const res = await a.inject({ method: 'GET', url: '/quota', remoteAddress: '10.20.0.2', headers: caller });
    expect(res.json().type).toBe('/problems/quota-exceeded');
    const ttl = await redis.ttl(`${PREFIX}quota:7001:${new Date().toISOString().slice(0, 10)}`);
    expect(ttl).toBeGreaterThan(3600);
    expect(ttl).toBeLessThanOrEqual(86_400 + 3600);
  });
});

describe('when Redis does not answer', () => {
  let t: TestApp;
  beforeAll(async () => {
    // Nothing listens on port 1: every command fails at once (no offline queue).
    t = await createTestApp({ TRACE_SAMPLE_RATE: 0, REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_DEFAULT_MAX: 1 }, { packs: packsWithTestCaller() });
  });
  afterAll(async () => t?.close());

  it('lets requests through (fail open) and counts the store errors', async () => {
    const errors = async () => (await t.app.metrics.getSingleMetric('valhalla_rate_limit_store_errors_total')?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
    const before = await errors();
    expect(await burst(t.app, '/redis-down', '10.30.0.1', 3)).toEqual([404, 404, 404]);
    expect(await burst(t.app, '/redis-down', '10.30.0.2', 2, { headers: asCaller({ clientId: 9, dailyQuota: 1 }) })).toEqual([404, 404]);
    expect(await errors()).toBeGreaterThanOrEqual(before + 5);
  });
});

describe.skipIf(!redisUp)('when Redis is cut off and comes back (through a TCP proxy)', () => {
  let t: TestApp;
  let proxy: FaultyProxy;
  const prefix = `${PREFIX}cut:`;
  const errorEvents = async () => (await t.inject({ method: 'GET', url: '/system/errors' })).json<{ items: unknown[] }>().items.length;

  beforeAll(async () => {
    const direct = new URL(REDIS_URL);
    proxy = new FaultyProxy({ host: direct.hostname, port: Number(direct.port || 6379) });
    const port = await proxy.listen();
    t = await createTestApp(
      { TRACE_SAMPLE_RATE: 0, REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_REDIS_PREFIX: prefix },
      { packs: packsWithTestCaller() },
    );
  });
  afterAll(async () => {
    proxy?.restore();
    await t?.close();
    await proxy?.close();
  });

  it('fails open on counting and quota, answers 503 problems for usage reads, never a 500, and recovers', async () => {
    for (const ip of ['10.40.0.1', '10.40.0.3']) {
      const rule = await t.inject({ method: 'POST', url: '/system/rate-limits', payload: { scope: 'ip', match: ip, max: 2, windowSeconds: 60 } });
      expect(rule.statusCode).toBe(201);
    }
    expect((await t.inject({ method: 'GET', url: '/system/rate-limits/status?key=client:1' })).statusCode).toBe(200);
    const errorsBefore = await errorEvents();

    proxy.cut();
    // Counting and the daily quota let requests through while Redis is gone (the rule says 2).
    expect(await burst(t.app, '/cut', '10.40.0.1', 4)).toEqual([404, 404, 404, 404]);
    expect(await burst(t.app, '/cut', '10.40.0.2', 3, { headers: asCaller({ clientId: 77, dailyQuota: 1 }) })).toEqual([404, 404, 404]);
    // Reads of Redis-held usage answer 503, for every kind of subject and for the caller itself.
    for (const key of ['client:1', 'ip:10.40.0.1', undefined]) {
      const res = await t.inject({ method: 'GET', url: `/system/rate-limits/status${key ? `?key=${key}` : ''}` });
      expect(res.statusCode, key).toBe(503);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json()).toMatchObject({ type: '/problems/counter-store-unavailable', status: 503 });
      expect(res.body).not.toContain('127.0.0.1');
    }
    expect(await errorEvents()).toBe(errorsBefore);

    proxy.restore();
    await vi.waitFor(async () => {
      expect((await t.inject({ method: 'GET', url: '/system/rate-limits/status?key=ip:10.40.0.3' })).statusCode).toBe(200);
    }, { timeout: 10_000, interval: 100 });
    // Counting is back: the rule's limit of 2 holds again.
    expect(await burst(t.app, '/back', '10.40.0.3', 3)).toEqual([404, 404, 429]);
  });

  it('recovers from a partition too: a connection frozen under a timed-out command is dropped and counting resumes', async () => {
    const rule = await t.inject({ method: 'POST', url: '/system/rate-limits', payload: { scope: 'ip', match: '10.40.0.9', max: 2, windowSeconds: 60 } });
    expect(rule.statusCode).toBe(201);
    proxy.freeze();
    // Each request waits at most RATE_LIMIT_REDIS_TIMEOUT_MS, then is let through.
    expect(await burst(t.app, '/frozen', '10.40.0.8', 3)).toEqual([404, 404, 404]);
    await sleep(500);
    proxy.restore();
    await vi.waitFor(async () => {
      expect((await t.inject({ method: 'GET', url: '/system/rate-limits/status?key=ip:10.40.0.9' })).statusCode).toBe(200);
    }, { timeout: 10_000, interval: 100 });
    expect(await burst(t.app, '/frozen-back', '10.40.0.9', 3)).toEqual([404, 404, 429]);
  });
});
