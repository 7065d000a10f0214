import { setFlagsFromString } from 'node:v8';

/**
 * Bounds how far V8 lets the old space grow past the live heap before a full collection
 * (`--heap-growing-percent`), for as long as at least one caller holds the bound.
 *
 * Why: a stream of short-lived rows (an export reading 100,000 rows a second) has part of them
 * promoted to the old space, and V8's own heuristic lets the old space grow up to 4x the live heap
 * before collecting: with a kernel's 60-80 MiB live heap, 150-250 MiB of garbage and RSS growth.
 * V8 reads the flag each time it sizes the heap after a full collection, so it can be set while
 * the stream runs and cleared afterwards; other workloads keep V8's own heuristic.
 *
 * Process-wide: overlapping holders share the lowest percentage asked for.
 */
const held = new Map<symbol, number>();
let applied = 0;

function apply(): void {
  const want = held.size === 0 ? 0 : Math.min(...held.values());
  if (want === applied) return;
  try {
    setFlagsFromString(`--heap-growing-percent=${want}`);
    applied = want;
  } catch {
    // A runtime with frozen V8 flags: the bound is best effort, the export runs regardless.
  }
}

/** Holds the bound at `percent` (0 = no bound) until the returned function is called. */
export function boundHeapGrowth(percent: number): () => void {
  if (percent <= 0) return () => {};
  const token = Symbol('heap-growth');
  held.set(token, percent);
  apply();
  return () => {
    if (held.delete(token)) apply();
  };
}

/** The percentage in force now (0: V8's own heuristic); for tests. */
export const heapGrowthBound = (): number => applied;
