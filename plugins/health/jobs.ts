import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import type { JobRunner } from '../../src/jobs/runner.js';
import type { RequestTotals } from './hooks.js';
import type { SnapshotFigures } from './schemas.js';
import type { SnapshotStore } from './service.js';

export interface WriterPending {
  name: string;
  pending: number;
}

/** Rows waiting in each batching writer, read from the kernel's `valhalla_batch_pending` gauge. */
export async function batchWritersPending(registry: Registry): Promise<WriterPending[]> {
  const gauge = registry.getSingleMetric('valhalla_batch_pending');
  if (!gauge) return [];
  const { values } = await gauge.get();
  return values.map((v) => ({ name: String(v.labels.writer ?? ''), pending: v.value }));
}

/**
 * The key figures of this instance. Event-loop delay is its own histogram, reset at each
 * snapshot, so the p99 covers one interval and Prometheus' default-metrics histogram is left
 * alone.
 */
export function createFiguresCollector(deps: { totals: RequestTotals; registry: Registry }) {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  return {
    async take(): Promise<SnapshotFigures> {
      const memory = process.memoryUsage();
      const p99Ms = delay.count > 0 ? delay.percentile(99) / 1e6 : 0;
      delay.reset();
      const writers = await batchWritersPending(deps.registry);
      return {
        requests: deps.totals.requests,
        serverErrors: deps.totals.serverErrors,
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        eventLoopDelayP99Ms: Math.round(p99Ms * 100) / 100,
        batchPending: writers.reduce((sum, w) => sum + w.pending, 0),
      };
    },
    stop(): void {
      delay.disable();
    },
  };
}
export type FiguresCollector = ReturnType<typeof createFiguresCollector>;

/**
 * Figures are per instance, while a periodic job runs on one instance per period: the job name
 * carries the instance id so every instance that runs jobs snapshots itself.
 */
export const SNAPSHOT_JOB = 'health:metrics-snapshot';

export function defineSnapshotJob(deps: { jobs: JobRunner; store: SnapshotStore; figures: FiguresCollector; instanceId: string; intervalMs: number }): void {
  deps.jobs.definePeriodic({
    name: SNAPSHOT_JOB,
    intervalMs: deps.intervalMs,
    // The figures are this instance's own: every instance snapshots itself.
    perInstance: true,
    async handler() {
      await deps.store.insert(deps.instanceId, await deps.figures.take());
    },
  });
}
