import type { FastifyBaseLogger } from 'fastify';
import type { TraceContext, Tracing } from '../tracing/index.js';
import type { SmokeRun } from './schemas.js';
import { judge, type ClaimedRun, type DeploymentService } from './service.js';
import { runSmokeChecks, type CheckSpan, type SmokeCheckResult } from './smoke-runner.js';
import { safeMessage } from '../../src/secrets.js';
import { parseTraceparent, parseTracestate } from '../tracing/trace-context.js';

export const SMOKE_RUN_JOB = 'deployments:smoke-run';

/** What a failed (or errored) run tells its listeners: the notifications pack (UG) subscribes. */
export interface SmokeFailure {
  run: SmokeRun;
  profile: { id: number; name: string; environment: string } | null;
  failedChecks: SmokeCheckResult[];
}
export type SmokeFailedListener = (failure: SmokeFailure) => void | Promise<void>;

export interface SmokeRunExecutor {
  /**
   * Claims the run and executes it, storing results and verdict. Undefined when the run was not
   * this executor's to take (another instance has it, it is finished, or it is gone).
   */
  execute(runId: number, signal?: AbortSignal): Promise<SmokeRun | undefined>;
  /** Subscribes to failed and errored runs; returns the unsubscribe function. */
  onSmokeFailed(listener: SmokeFailedListener): () => void;
  /** Aborts runs in flight (their checks end as 'aborted', the run as error) and waits for them. */
  close(): Promise<void>;
  /** True once `close()` was called: nothing new is claimed. */
  readonly closed: boolean;
}

export interface SmokeRunExecutorDeps {
  service: DeploymentService;
  /** The tracing pack's service when it is loaded: each check is a client span of the run's trace. */
  tracing: Tracing | null;
  userAgent: string;
  log: FastifyBaseLogger;
  /** Told about every finished run (metrics). */
  onFinished?: (run: SmokeRun, results: readonly SmokeCheckResult[]) => void;
}

/** The span of the request that started the run (and its tracestate), as a parent for the run's own span. */
function parentFrom(claim: Pick<ClaimedRun, 'traceparent' | 'tracestate'>): TraceContext | null {
  const inbound = parseTraceparent(claim.traceparent ?? undefined);
  if (!inbound) return null;
  return {
    traceId: inbound.traceId,
    spanId: inbound.parentId,
    parentSpanId: null,
    sampled: inbound.sampled,
    randomTraceId: inbound.randomTraceId,
    traceState: parseTracestate(claim.tracestate ?? undefined),
  };
}

export function createSmokeRunExecutor(deps: SmokeRunExecutorDeps): SmokeRunExecutor {
  const { service, tracing, userAgent, log } = deps;
  const listeners = new Set<SmokeFailedListener>();
  const shutdown = new AbortController();
  const inFlight = new Set<Promise<unknown>>();

  async function notifyFailed(failure: SmokeFailure): Promise<void> {
    for (const listener of listeners) {
      try {
        await listener(failure);
      } catch (err) {
        log.warn({ runId: failure.run.id, err: { message: safeMessage(err) } }, 'a smoke-failure listener threw');
      }
    }
  }

  async function run(claim: ClaimedRun, signal: AbortSignal): Promise<SmokeRun | undefined> {
    const profile = (await service.profileSummary(claim.profileId)) ?? null;
    const runSpan = tracing?.startSpan(`smoke run ${profile?.name ?? claim.profileId}`, {
      parent: parentFrom(claim),
      kind: 'internal',
      attributes: { 'smoke.run_id': claim.id, 'smoke.profile_id': claim.profileId },
    });
    const startSpan = runSpan
      ? (check: { name: string; method: string }, url: string): CheckSpan => {
          const span = tracing!.startSpan(`smoke ${check.method} ${check.name}`, {
            parent: runSpan.context,
            kind: 'client',
            attributes: { 'http.request.method': check.method, 'url.full': url },
          });
          const { traceparent, tracestate } = span.headers();
          return {
            headers: tracestate ? { traceparent, tracestate } : { traceparent },
            end: (r) => span.end({ status: r.passed ? 'ok' : 'error', statusCode: r.statusCode, attributes: r.error ? { 'smoke.error': r.error } : {} }),
          };
        }
      : undefined;

    const results = await runSmokeChecks({ baseUrl: claim.baseUrl, checks: claim.checks, concurrency: claim.concurrency, userAgent, signal, startSpan });
    const outcome = signal.aborted
      ? { status: 'error' as const, passed: results.filter((r) => r.passed).length, failed: results.filter((r) => !r.passed).length, verdict: 'error: interrupted by shutdown before every check finished' }
      : judge(results);
    const finished = await service.finishRun(claim, { ...outcome, results });
    runSpan?.end({ status: outcome.status === 'passed' ? 'ok' : 'error', attributes: { 'smoke.verdict': outcome.verdict } });
    if (!finished) return undefined;
    deps.onFinished?.(finished, results);
    if (finished.status !== 'passed') await notifyFailed({ run: finished, profile, failedChecks: results.filter((r) => !r.passed) });
    return finished;
  }

  return {
    async execute(runId, signal) {
      if (shutdown.signal.aborted) return undefined;
      const claim = await service.claimRun(runId);
      if (!claim) return undefined;
      const combined = signal ? AbortSignal.any([signal, shutdown.signal]) : shutdown.signal;
      const task = run(claim, combined);
      inFlight.add(task);
      try {
        return await task;
      } finally {
        inFlight.delete(task);
      }
    },
    onSmokeFailed(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      shutdown.abort();
      await Promise.allSettled([...inFlight]);
    },
    get closed() {
      return shutdown.signal.aborted;
    },
  };
}
