import type { FastifyBaseLogger } from 'fastify';
import { safeMessage } from './secrets.js';

/**
 * Bounded batching writer for logs, spans, error events and `lastUsedAt` stamps: `push()` never
 * waits on the database; a timer (or a full batch) flushes; a failed flush keeps the rows for
 * the next try; past `maxQueue` the oldest rows are dropped and counted, so a database outage
 * cannot grow memory without bound. `close()` flushes what is left.
 */
export interface BatchWriter<T> {
  push(item: T): void;
  flush(): Promise<void>;
  close(): Promise<void>;
  readonly pending: number;
  readonly dropped: number;
}

export interface BatchWriterOptions<T> {
  name: string;
  write: (items: T[]) => Promise<void>;
  intervalMs: number;
  maxBatch?: number;
  maxQueue: number;
  log: FastifyBaseLogger;
  onDrop?: (count: number) => void;
}

export function createBatchWriter<T>(opts: BatchWriterOptions<T>): BatchWriter<T> {
  const maxBatch = opts.maxBatch ?? 500;
  let queue: T[] = [];
  let dropped = 0;
  let flushing: Promise<void> | undefined;
  let closed = false;
  let failures = 0;

  const timer = setInterval(() => void flush(), opts.intervalMs);
  timer.unref();

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      try {
        await opts.write(batch);
        queue = queue.slice(batch.length);
        if (failures > 0) opts.log.info({ writer: opts.name }, 'batch writer recovered');
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 60 === 0) {
          opts.log.warn({ writer: opts.name, pending: queue.length, err: { message: safeMessage(err) } }, 'batch write failed; will retry');
        }
        return;
      }
    }
  }

  function flush(): Promise<void> {
    if (!flushing) flushing = drain().finally(() => (flushing = undefined));
    return flushing;
  }

  return {
    push(item) {
      if (closed) return;
      queue.push(item);
      if (queue.length > opts.maxQueue) {
        const over = queue.length - opts.maxQueue;
        queue.splice(0, over);
        dropped += over;
        opts.onDrop?.(over);
      }
      if (queue.length >= maxBatch && !flushing) void flush();
    },
    flush,
    async close() {
      closed = true;
      clearInterval(timer);
      if (flushing) await flushing;
      await flush();
    },
    get pending() {
      return queue.length;
    },
    get dropped() {
      return dropped;
    },
  };
}
