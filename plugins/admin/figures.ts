import type { ProblemKind } from '../../src/problem.js';

/**
 * The console's charts, from this instance's own traffic: a ring of fixed time buckets (10 s over
 * the last hour by default) that an `onResponse` hook adds each response to. Recording is O(1)
 * on preallocated typed arrays (a bucket is zeroed once, when the ring comes round to it again);
 * nothing touches the database, and reading walks at most the ring's size.
 *
 * Latency is kept per bucket as a log-scale histogram (bins 20 % apart from 0.1 ms to ~80 s), so
 * a p99 is the upper edge of the bin holding the 99th percentile: at most 20 % above the true
 * value, never below it.
 */

/** What is counted per bucket, in the order of the `counts` rows. */
const COUNTS = ['requests', 'status4xx', 'status5xx', 'blocked', 'shieldRefused', 'rateLimited'] as const;
type CountName = (typeof COUNTS)[number];
const [REQUESTS, S4XX, S5XX, BLOCKED, SHIELD, RATE_LIMITED] = COUNTS.map((_, i) => i) as [number, number, number, number, number, number];

const LATENCY_FLOOR_MS = 0.1;
const LATENCY_RATIO = 1.2;
const LATENCY_BINS = 80;
const LOG_RATIO = Math.log(LATENCY_RATIO);

/** Bin `i` holds latencies in (floor × ratio^(i-1), floor × ratio^i]; bin 0 everything up to the floor. */
const binOf = (ms: number): number => (ms <= LATENCY_FLOOR_MS ? 0 : Math.min(LATENCY_BINS - 1, Math.ceil(Math.log(ms / LATENCY_FLOOR_MS) / LOG_RATIO)));
const binUpperMs = (bin: number): number => LATENCY_FLOOR_MS * LATENCY_RATIO ** bin;

export interface RequestFiguresOptions {
  bucketSeconds?: number;
  /** Buckets kept: the history is bucketSeconds × buckets. */
  buckets?: number;
}

export interface FigureSeries {
  /** Start of each bucket, Unix seconds, oldest first; the last one is the bucket in progress. */
  t: number[];
  requests: number[];
  /** Requests per second in each bucket (the bucket in progress: over its elapsed part). */
  rps: number[];
  /** p99 response time in ms (the upper edge of its histogram bin); null for a bucket without requests. */
  p99Ms: Array<number | null>;
  status4xx: number[];
  status5xx: number[];
  /** Refused by the blocklist (403 `blocked`). */
  blocked: number[];
  /** Refused by the read-only shield (503 `read-only` or `maintenance`). */
  shieldRefused: number[];
  /** Refused by a rate limit (429). */
  rateLimited: number[];
}

export interface FigureTotals extends Record<CountName, number> {
  seconds: number;
  /** 5xx among all responses, 0..1 (0 without requests), not counting the shield's refusals (a mode chosen, not a failure). */
  errorRate: number;
  p99Ms: number | null;
}

export interface RequestFigures {
  record(nowMs: number, statusCode: number, elapsedMs: number, problemKind: ProblemKind | null): void;
  /** The last `minutes` (capped at the ring's history), and totals over the last `recentSeconds`. */
  read(nowMs: number, minutes: number, recentSeconds?: number): { bucketSeconds: number; series: FigureSeries; recent: FigureTotals };
  readonly historySeconds: number;
}

export function createRequestFigures(options: RequestFiguresOptions = {}): RequestFigures {
  const bucketSeconds = options.bucketSeconds ?? 10;
  const size = options.buckets ?? 360;
  const bucketMs = bucketSeconds * 1000;
  // Which bucket (absolute index, ms / bucketMs) each slot holds now; -1: never used.
  const slotBucket = new Float64Array(size).fill(-1);
  const counts = new Float64Array(size * COUNTS.length);
  const latency = new Uint32Array(size * LATENCY_BINS);

  /** The slot of absolute bucket `b`, zeroed first if it still holds an older bucket. */
  const slotFor = (b: number): number => {
    const slot = b % size;
    if (slotBucket[slot] !== b) {
      slotBucket[slot] = b;
      counts.fill(0, slot * COUNTS.length, (slot + 1) * COUNTS.length);
      latency.fill(0, slot * LATENCY_BINS, (slot + 1) * LATENCY_BINS);
    }
    return slot;
  };

  const p99Of = (hist: Uint32Array, total: number): number | null => {
    if (total === 0) return null;
    const rank = Math.ceil(total * 0.99);
    let seen = 0;
    for (let i = 0; i < LATENCY_BINS; i++) {
      seen += hist[i]!;
      if (seen >= rank) return Math.round(binUpperMs(i) * 100) / 100;
    }
    return Math.round(binUpperMs(LATENCY_BINS - 1) * 100) / 100;
  };

  return {
    historySeconds: bucketSeconds * size,

    record(nowMs, statusCode, elapsedMs, problemKind) {
      const slot = slotFor(Math.floor(nowMs / bucketMs));
      const base = slot * COUNTS.length;
      counts[base + REQUESTS]!++;
      if (statusCode >= 500) counts[base + S5XX]!++;
      else if (statusCode >= 400) counts[base + S4XX]!++;
      if (statusCode === 429) counts[base + RATE_LIMITED]!++;
      if (problemKind === 'blocked') counts[base + BLOCKED]!++;
      else if (problemKind === 'read-only' || problemKind === 'maintenance') counts[base + SHIELD]!++;
      latency[slot * LATENCY_BINS + binOf(elapsedMs)]!++;
    },

    read(nowMs, minutes, recentSeconds = 300) {
      const current = Math.floor(nowMs / bucketMs);
      const n = Math.max(1, Math.min(size, Math.ceil((minutes * 60) / bucketSeconds)));
      const recentBuckets = Math.max(1, Math.min(size, Math.ceil(recentSeconds / bucketSeconds)));
      const series: FigureSeries = { t: [], requests: [], rps: [], p99Ms: [], status4xx: [], status5xx: [], blocked: [], shieldRefused: [], rateLimited: [] };
      const recentCounts = new Float64Array(COUNTS.length);
      const recentHist = new Uint32Array(LATENCY_BINS);
      const emptyHist = new Uint32Array(LATENCY_BINS);
      for (let b = current - Math.max(n, recentBuckets) + 1; b <= current; b++) {
        const slot = b % size;
        const live = b >= 0 && slotBucket[slot] === b;
        const at = (i: number) => (live ? counts[slot * COUNTS.length + i]! : 0);
        const hist = live ? latency.subarray(slot * LATENCY_BINS, (slot + 1) * LATENCY_BINS) : emptyHist;
        if (b > current - recentBuckets) {
          for (let i = 0; i < COUNTS.length; i++) recentCounts[i]! += at(i);
          for (let i = 0; i < LATENCY_BINS; i++) recentHist[i]! += hist[i]!;
        }
        if (b <= current - n) continue;
        const requests = at(REQUESTS);
        const elapsed = b === current ? Math.max(1, (nowMs - b * bucketMs) / 1000) : bucketSeconds;
        series.t.push((b * bucketMs) / 1000);
        series.requests.push(requests);
        series.rps.push(Math.round((requests / elapsed) * 100) / 100);
        series.p99Ms.push(p99Of(hist, requests));
        series.status4xx.push(at(S4XX));
        series.status5xx.push(at(S5XX));
        series.blocked.push(at(BLOCKED));
        series.shieldRefused.push(at(SHIELD));
        series.rateLimited.push(at(RATE_LIMITED));
      }
      const total = recentCounts[REQUESTS]!;
      const recent = Object.fromEntries(COUNTS.map((name, i) => [name, recentCounts[i]!])) as Record<CountName, number>;
      return {
        bucketSeconds,
        series,
        recent: {
          ...recent,
          seconds: recentBuckets * bucketSeconds,
          // The shield's 503s are the mode an operator chose, not failures.
          errorRate: total === 0 ? 0 : Math.max(0, recentCounts[S5XX]! - recentCounts[SHIELD]!) / total,
          p99Ms: p99Of(recentHist, total),
        },
      };
    },
  };
}
