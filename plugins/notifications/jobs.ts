import type { FastifyBaseLogger } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import type { JobRunner } from '../../src/jobs/runner.js';
import { safeMessage } from '../../src/secrets.js';
import type { Tracing, TraceContext } from '../tracing/index.js';
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent } from '../tracing/trace-context.js';
import type { DeliveryResult, Senders } from './senders.js';
import { retryDelayMs, type ClaimedRow, type Finish, type NotificationService } from './service.js';
import { CHANNEL_TYPES, type ChannelType } from './table.js';

export const DISPATCH_JOB = 'notifications:dispatch';
/** Refreshes the outbox gauges (valhalla_outbox_*), on every instance that runs jobs. */
export const OUTBOX_FIGURES_JOB = 'notifications:outbox-figures';

/** How long a claim holds a row: longer than the slowest attempt (a 30 s timeout) with room to record it. */
export const LEASE_MS = 60_000;

/** How long one tick of the dispatch job keeps claiming batches. */
export const DRAIN_BUDGET_MS = 10_000;

export type DeliveryOutcome = 'delivered' | 'retry' | 'dead';

export interface OutboxDispatcher {
  /** Claims one batch of due rows and delivers it; returns how many rows it claimed. */
  runOnce(signal?: AbortSignal): Promise<number>;
  /**
   * Batches until nothing is due, `signal` aborts or `budgetMs` has passed (so a long backlog does
   * not hold up the instance's other periodic jobs); returns how many rows were claimed.
   */
  drain(signal?: AbortSignal, budgetMs?: number): Promise<number>;
}

export interface OutboxDispatcherDeps {
  service: Pick<NotificationService, 'claimDue' | 'finish' | 'release'>;
  senders: Senders;
  /** Who holds the claims: the instance id (plus a suffix when one process runs several). */
  owner: string;
  batchSize: number;
  /** Deliveries of one batch in flight at once. */
  concurrency: number;
  leaseMs?: number;
  tracing: Tracing | null;
  log: FastifyBaseLogger;
  onOutcome?: (type: ChannelType | 'none', outcome: DeliveryOutcome, seconds: number) => void;
}

/** The enqueuing change's span as the parent of the delivery's span. */
function parentOf(traceparent: string | null): TraceContext | null {
  const inbound = parseTraceparent(traceparent ?? undefined);
  return inbound ? { traceId: inbound.traceId, spanId: inbound.parentId, parentSpanId: null, sampled: inbound.sampled, randomTraceId: inbound.randomTraceId, traceState: null } : null;
}

/** What to record after `result`: delivered, retried on the Svix schedule (later if `Retry-After` says so), or dead. */
export function decide(row: Pick<ClaimedRow, 'attempts' | 'maxAttempts'>, result: DeliveryResult, random: () => number = Math.random): Finish {
  if (result.ok) return { outcome: 'delivered', statusCode: result.statusCode };
  if (result.permanent) return { outcome: 'dead', statusCode: result.statusCode, error: result.error, ...(result.gone && { disableChannel: result.error }) };
  if (row.attempts >= row.maxAttempts) return { outcome: 'dead', statusCode: result.statusCode, error: `${result.error} (attempt ${row.attempts} of ${row.maxAttempts}, the last)` };
  const delayMs = Math.max(retryDelayMs(row.attempts, random), result.retryAfterMs ?? 0);
  return { outcome: 'retry', statusCode: result.statusCode, error: result.error, delayMs };
}

/**
 * The outbox dispatcher: claims due rows (`FOR UPDATE SKIP LOCKED` under a lease), delivers
 * each through its channel's sender with a client span (`traceparent` on the outgoing call),
 * and records the outcome only while it still holds the claim.
 */
export function createOutboxDispatcher(deps: OutboxDispatcherDeps): OutboxDispatcher {
  const { service, senders, owner, tracing, log } = deps;
  const leaseMs = deps.leaseMs ?? LEASE_MS;

  async function deliver(row: ClaimedRow, signal?: AbortSignal): Promise<void> {
    const started = performance.now();
    const channel = row.channel;
    let result: DeliveryResult;
    if (!channel) result = { ok: false, statusCode: null, error: 'channel deleted', retryAfterMs: null, permanent: true, gone: false };
    else if (!channel.enabled) result = { ok: false, statusCode: null, error: `channel disabled${channel.disabledReason ? `: ${channel.disabledReason}` : ''}`, retryAfterMs: null, permanent: true, gone: false };
    else {
      const parent = parentOf(row.traceparent);
      const span = tracing?.startSpan(`notify ${channel.type} ${row.eventType}`, {
        parent,
        kind: 'client',
        attributes: { 'notify.channel_id': channel.id, 'notify.message_id': row.messageId, 'notify.attempt': row.attempts },
      });
      const traceHeaders: Record<string, string> = span
        ? { ...span.headers() }
        : { traceparent: formatTraceparent({ traceId: parent?.traceId ?? newTraceId(), spanId: newSpanId(), sampled: parent?.sampled ?? false, randomTraceId: parent?.randomTraceId ?? true }) };
      result = await senders.deliver(channel.type, channel.config, { messageId: row.messageId, eventType: row.eventType, payload: row.payload, createdAt: row.createdAt }, { traceHeaders, signal });
      span?.end({ status: result.ok ? 'ok' : 'error', statusCode: result.statusCode, attributes: result.ok ? {} : { 'notify.error': result.error } });
    }
    if (!result.ok && signal?.aborted) {
      // Shutdown cut the attempt short: hand the row back rather than spend one of its attempts.
      await service.release(row, owner).catch(() => false);
      return;
    }
    const finish = decide(row, result);
    const kept = await service.finish(row, owner, finish).catch((err: unknown) => {
      log.warn({ outboxId: row.id, err: { message: safeMessage(err) } }, 'could not record a delivery outcome; the lease will expire and the row be delivered again');
      return false;
    });
    if (!kept) log.warn({ outboxId: row.id }, 'delivery finished after its claim was taken over');
    if (finish.outcome !== 'delivered') log.info({ outboxId: row.id, channelId: row.channelId, attempt: row.attempts, outcome: finish.outcome, error: finish.error }, 'notification not delivered');
    deps.onOutcome?.(channel?.type ?? 'none', finish.outcome, (performance.now() - started) / 1000);
  }

  async function runOnce(signal?: AbortSignal): Promise<number> {
    if (signal?.aborted) return 0;
    const rows = await service.claimDue(owner, deps.batchSize, leaseMs);
    let next = 0;
    const worker = async () => {
      while (next < rows.length) await deliver(rows[next++]!, signal);
    };
    await Promise.all(Array.from({ length: Math.min(deps.concurrency, rows.length) }, worker));
    return rows.length;
  }

  return {
    runOnce,
    async drain(signal, budgetMs = Number.POSITIVE_INFINITY) {
      const deadline = performance.now() + budgetMs;
      let total = 0;
      for (;;) {
        const n = await runOnce(signal);
        total += n;
        if (n === 0 || signal?.aborted || performance.now() >= deadline) return total;
      }
    },
  };
}

/**
 * The outbox gauges, by channel type, refreshed by a periodic job on every instance that runs
 * jobs (never by a scrape). One outbox for the cluster, so those instances all report the same
 * figures: aggregate with `max`, not `sum`.
 */
export function defineOutboxFigures(deps: { registry: Registry; jobs: Pick<JobRunner, 'definePeriodic'>; service: Pick<NotificationService, 'queueFigures'>; intervalMs: number }): void {
  const outboxPending = new Gauge({ name: 'valhalla_outbox_pending', help: 'Outbox rows not delivered yet (pending or being sent), whole cluster, by channel type', labelNames: ['channel_type'], registers: [deps.registry] });
  const outboxDead = new Gauge({ name: 'valhalla_outbox_dead', help: 'Dead letters in the outbox (given up; kept until retention purges them), whole cluster, by channel type', labelNames: ['channel_type'], registers: [deps.registry] });
  const outboxOldest = new Gauge({ name: 'valhalla_outbox_oldest_pending_seconds', help: 'How long the oldest outbox row not delivered yet has waited, by channel type; 0 when none waits', labelNames: ['channel_type'], registers: [deps.registry] });
  const outboxGauges = [outboxPending, outboxDead, outboxOldest];
  deps.jobs.definePeriodic({
    name: OUTBOX_FIGURES_JOB,
    intervalMs: deps.intervalMs,
    perInstance: true,
    async handler() {
      let figures;
      try {
        figures = await deps.service.queueFigures();
      } catch (err) {
        // No stale figure while the database cannot be read: the series go away until it can.
        for (const g of outboxGauges) g.reset();
        throw err;
      }
      const waiting = new Map<string, number>();
      const dead = new Map<string, number>();
      const oldest = new Map<string, number>();
      for (const type of CHANNEL_TYPES) for (const m of [waiting, dead, oldest]) m.set(type, 0);
      for (const f of figures) {
        if (f.status === 'dead') dead.set(f.channelType, (dead.get(f.channelType) ?? 0) + f.rows);
        else {
          waiting.set(f.channelType, (waiting.get(f.channelType) ?? 0) + f.rows);
          oldest.set(f.channelType, Math.max(oldest.get(f.channelType) ?? 0, f.oldestSeconds));
        }
      }
      // Reset and set in one synchronous stretch: a scrape sees the old figures or the new ones.
      for (const [gauge, values] of [[outboxPending, waiting], [outboxDead, dead], [outboxOldest, oldest]] as const) {
        gauge.reset();
        for (const [channel_type, value] of values) gauge.set({ channel_type }, value);
      }
    },
  });
}
