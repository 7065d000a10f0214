import { describe, expect, it } from 'vitest';
import { createBatchWriter } from '../../src/batch-writer.js';

const silent = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, fatal() {}, child() { return silent; }, level: 'silent', silent() {} };

describe('batch writer', () => {
  it('keeps rows through a failed flush and writes them on the next one', async () => {
    const written: number[] = [];
    let down = true;
    const w = createBatchWriter<number>({ name: 't', intervalMs: 60_000, maxQueue: 100, log: silent, write: async (rows) => {
      if (down) throw new Error('db down');
      written.push(...rows);
    } });
    w.push(1);
    w.push(2);
    await w.flush();
    expect(written).toEqual([]);
    expect(w.pending).toBe(2);
    down = false;
    await w.flush();
    expect(written).toEqual([1, 2]);
    await w.close();
  });

  it('drops the oldest rows past maxQueue and counts them', async () => {
    let dropped = 0;
    const w = createBatchWriter<number>({ name: 't', intervalMs: 60_000, maxQueue: 100, maxBatch: 1000, log: silent, onDrop: (n) => (dropped += n), write: async () => {
      throw new Error('db down');
    } });
    for (let i = 0; i < 150; i++) w.push(i);
    expect(w.pending).toBe(100);
    expect(w.dropped).toBe(50);
    expect(dropped).toBe(50);
  });

  it('writes in batches of maxBatch and flushes what is left on close', async () => {
    const batches: number[][] = [];
    const w = createBatchWriter<number>({ name: 't', intervalMs: 60_000, maxQueue: 10_000, maxBatch: 10, log: silent, write: async (rows) => void batches.push(rows) });
    for (let i = 0; i < 25; i++) w.push(i);
    await w.close();
    expect(batches.flat()).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(10);
    w.push(99);
    expect(w.pending).toBe(0);
  });
});
