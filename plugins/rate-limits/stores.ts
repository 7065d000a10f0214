import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';

/** A counter in a fixed window, as @fastify/rate-limit's stores report it. */
export interface WindowCount {
  current: number;
  /** Milliseconds until the window ends. */
  ttl: number;
}
export type WindowCallback = (err: Error | null, result: WindowCount | null) => void;

/**
 * @fastify/rate-limit's own counter stores (its LRU `LocalStore` and its Lua-scripted
 * `RedisStore`), called directly. Going through `createRateLimit()` costs four awaits and a
 * promise per request; the local store answers its callback synchronously, so a request counted
 * in memory costs no promise at all (`npm run bench`). Both are the package's files, loaded by
 * path: it exports them only as its plugin's `store` choice.
 */
export interface CounterStore {
  incr(key: string, cb: WindowCallback, timeWindowMs: number, max: number): void;
  /** The current count without counting. */
  read(key: string, cb: WindowCallback, timeWindowMs: number, max: number): void;
}

const require = createRequire(import.meta.url);
type LocalStoreClass = new (continueExceeding: boolean, exponentialBackoff: boolean, cache: number) => CounterStore;
type RedisStoreClass = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, prefix: string) => CounterStore;

/** At most `entries` counters, least recently used evicted first. */
export function memoryCounterStore(entries: number): CounterStore {
  const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as LocalStoreClass;
  return new LocalStore(false, false, entries);
}

/** Counters under `<prefix><counterKey>`, shared by every instance on this Redis. */
export function redisCounterStore(redis: Redis, prefix: string): CounterStore {
  const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as RedisStoreClass;
  return new RedisStore(false, false, redis, prefix);
}
