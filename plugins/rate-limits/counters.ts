import { Redis } from 'ioredis';

/**
 * Where counters live: Redis when REDIS_URL is set (every instance shares them), else this
 * process's memory. The request counters themselves are @fastify/rate-limit's stores; this file
 * holds the Redis connection they share and the per-client daily quota counter.
 */

/**
 * One connection per app, tuned so that a Redis outage never holds a request:
 * - `enableOfflineQueue: false`: while disconnected a command fails at once instead of queueing;
 * - `maxRetriesPerRequest: 0`: a command in flight when the connection drops fails at once;
 * - `commandTimeout`: a Redis that accepts but does not answer fails after `timeoutMs`.
 * The limiter then fails open (see hooks.ts). Reconnection continues in the background.
 */
export function createRedisClient(url: string, timeoutMs: number, onError: (err: Error) => void): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  redis.on('error', onError);
  return redis;
}

/**
 * ioredis's `commandTimeout` rejects a command but keeps its connection. On a partition (Redis,
 * or a proxy in front of it, holds the connection open and never answers) every later command
 * would time out on it too, for good. After a timeout this drops the connection (at most once a
 * second) so ioredis opens a fresh one; its offline queue is off, so nothing waits meanwhile.
 */
export function reconnectAfterTimeout(redis: Redis): (err: unknown) => void {
  let last = 0;
  return (err) => {
    if (!/timed out/i.test(String((err as { message?: unknown } | null)?.message ?? ''))) return;
    const now = Date.now();
    if (now - last < 1000) return;
    last = now;
    redis.disconnect(true);
  };
}

/** Waits until the connection is ready, at most `ms`: a Redis down at start is not fatal (fail open). */
export function waitForRedis(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    timer.unref();
    redis.once('ready', onReady);
  });
}

export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    await redis.quit().catch(() => redis.disconnect());
  } else {
    redis.disconnect();
  }
}

/** `2025-03-01` for any time on that UTC day. */
export const utcDay = (now: Date): string => now.toISOString().slice(0, 10);

/** The next midnight UTC, in epoch seconds. */
export const nextUtcMidnight = (now: Date): number => Math.floor(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) / 1000);

/** Seconds from `now` until the quota resets (at least 1, so `Retry-After` is never 0). */
export const secondsToUtcMidnight = (now: Date): number => Math.max(1, nextUtcMidnight(now) - Math.floor(now.getTime() / 1000));

/** Requests per client per UTC day. */
export interface QuotaCounter {
  readonly store: 'redis' | 'memory';
  /** Counts one request and returns the day's count so far, this one included. */
  incr(clientId: number, now: Date): Promise<number>;
  read(clientId: number, now: Date): Promise<number>;
}

/** Redis: INCR on `<prefix>quota:<clientId>:<day>`, expiring an hour after that day ends. */
export function redisQuotaCounter(redis: Redis, prefix: string): QuotaCounter {
  const key = (clientId: number, now: Date) => `${prefix}quota:${clientId}:${utcDay(now)}`;
  return {
    store: 'redis',
    async incr(clientId, now) {
      const k = key(clientId, now);
      const results = await redis.multi().incr(k).expireat(k, nextUtcMidnight(now) + 3600).exec();
      const [err, count] = results?.[0] ?? [new Error('quota counter: empty transaction result'), null];
      if (err) throw err;
      return Number(count);
    },
    async read(clientId, now) {
      return Number((await redis.get(key(clientId, now))) ?? 0);
    },
  };
}

/** In memory: one count per client for the current UTC day; a new day starts from zero. */
export function memoryQuotaCounter(): QuotaCounter {
  let day = '';
  const counts = new Map<number, number>();
  const roll = (now: Date) => {
    const today = utcDay(now);
    if (today !== day) {
      day = today;
      counts.clear();
    }
  };
  return {
    store: 'memory',
    async incr(clientId, now) {
      roll(now);
      const n = (counts.get(clientId) ?? 0) + 1;
      counts.set(clientId, n);
      return n;
    },
    async read(clientId, now) {
      roll(now);
      return counts.get(clientId) ?? 0;
    },
  };
}
