import { describe, expect, it } from 'vitest';
import { createRequestFigures } from './figures.js';

const T0 = Date.UTC(2026, 10, 30, 1, 0, 0); // on a 10 s boundary

describe('request figures (the console charts)', () => {
  it('counts each response in its 10 s bucket, by kind', () => {
    const f = createRequestFigures();
    f.record(T0 + 1_000, 200, 3, null);
    f.record(T0 + 2_000, 404, 1, 'route-not-found');
    f.record(T0 + 3_000, 429, 1, 'rate-limited');
    f.record(T0 + 4_000, 403, 1, 'blocked');
    f.record(T0 + 5_000, 503, 1, 'read-only');
    f.record(T0 + 6_000, 500, 40, 'internal');
    f.record(T0 + 12_000, 200, 2, null);
    const { series, recent, bucketSeconds } = f.read(T0 + 15_000, 1);
    expect(bucketSeconds).toBe(10);
    expect(series.t).toHaveLength(6);
    expect(series.t.slice(-2)).toEqual([T0 / 1000, T0 / 1000 + 10]);
    expect(series.requests.slice(-2)).toEqual([6, 1]);
    expect(series.status4xx.slice(-2)).toEqual([3, 0]);
    expect(series.status5xx.slice(-2)).toEqual([2, 0]);
    expect(series.blocked.slice(-2)).toEqual([1, 0]);
    expect(series.shieldRefused.slice(-2)).toEqual([1, 0]);
    expect(series.rateLimited.slice(-2)).toEqual([1, 0]);
    // a whole bucket: over 10 s; the one in progress: over its 5 s so far
    expect(series.rps.slice(-2)).toEqual([0.6, 0.2]);
    expect(series.p99Ms.slice(0, 4)).toEqual([null, null, null, null]);
    expect(recent).toMatchObject({ requests: 7, status5xx: 2, shieldRefused: 1, blocked: 1, rateLimited: 1 });
    // the shield's 503 is a mode chosen, not an error: 1 of 7
    expect(recent.errorRate).toBeCloseTo(1 / 7);
  });

  it('answers a p99 at most 20 % above the true one, never below', () => {
    const f = createRequestFigures();
    const latencies = Array.from({ length: 1000 }, (_, i) => 0.05 + i * 0.731); // 0.05 .. 730 ms
    for (const ms of latencies) f.record(T0 + 1_000, 200, ms, null);
    const truth = [...latencies].sort((a, b) => a - b)[Math.ceil(1000 * 0.99) - 1]!;
    const p99 = f.read(T0 + 9_000, 1).series.p99Ms.at(-1)!;
    expect(p99).toBeGreaterThanOrEqual(truth);
    expect(p99).toBeLessThanOrEqual(truth * 1.2 + 0.01);
  });

  it('forgets a bucket once the ring comes round to it again (an hour later)', () => {
    const f = createRequestFigures({ bucketSeconds: 10, buckets: 360 });
    f.record(T0 + 1_000, 500, 1, null);
    f.record(T0 + 3_600_000 + 1_000, 200, 1, null); // same slot, an hour on
    const { series, recent } = f.read(T0 + 3_600_000 + 2_000, 60);
    expect(series.t).toHaveLength(360);
    expect(series.requests.reduce((a, b) => a + b)).toBe(1);
    expect(series.status5xx.reduce((a, b) => a + b)).toBe(0);
    expect(recent.requests).toBe(1);
    // and a read long after the last request shows nothing left over
    const later = f.read(T0 + 3 * 3_600_000, 60);
    expect(later.series.requests.every((n) => n === 0)).toBe(true);
    expect(later.recent).toMatchObject({ requests: 0, errorRate: 0, p99Ms: null });
  });

  it('returns at most the history it keeps', () => {
    const f = createRequestFigures({ bucketSeconds: 10, buckets: 6 });
    expect(f.historySeconds).toBe(60);
    expect(f.read(T0, 60).series.t).toHaveLength(6);
    expect(f.read(T0, 0.2).series.t).toHaveLength(2);
  });
});
