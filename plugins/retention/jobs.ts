import type { FastifyBaseLogger } from 'fastify';
import { lockKey, type Database, type DbOrTx } from '../../db/client.js';
import { ProblemError } from '../../src/problem.js';
import { safeMessage } from '../../src/secrets.js';
import type { RunResult } from './schemas.js';
import { cutoffFor, type PurgeOptions, type RetentionService } from './service.js';

export const PURGE_JOB = 'retention:purge';

/** Writes the run's audit entry inside `tx` (the operator's request, or the job as system). */
export type AuditRun = (tx: DbOrTx, entry: { operation: string; targetType: string; targetId: string; after: unknown; result?: 'success' | 'failure' }) => Promise<unknown>;

export interface PurgeRunnerDeps {
  service: RetentionService;
  database: Pick<Database, 'db' | 'withAdvisoryLock'>;
  options: Omit<PurgeOptions, 'signal' | 'onBatch'>;
  log: FastifyBaseLogger;
  onBatch?: (category: string, rows: number) => void;
  onRun?: (category: string, status: 'complete' | 'partial' | 'failed') => void;
}

export interface RunOptions {
  dryRun: boolean;
  audit: AuditRun;
  /** False for the periodic job: a run that purged nothing leaves no audit entry (failures always do). */
  auditEmpty?: boolean;
  signal?: AbortSignal;
}

export interface PurgeRunner {
  /**
   * Runs one category's policy now (or counts, with `dryRun`). A purge already running on this
   * category (the job, another request, another instance) is a 409. Undefined without a policy.
   */
  run(category: string, o: RunOptions): Promise<RunResult | undefined>;
  /** Every enabled policy whose category is registered, one after another (the periodic job). */
  runAll(audit: AuditRun, signal?: AbortSignal): Promise<RunResult[]>;
}

export function createPurgeRunner(deps: PurgeRunnerDeps): PurgeRunner {
  const { service, database, log } = deps;

  async function run(category: string, o: RunOptions): Promise<RunResult | undefined> {
    const policy = await service.get(category);
    if (!policy) return undefined;
    const c = service.categoryOf(category);
    const started = Date.now();
    // The floor in force now, not the one checked when the policy was written (it may have been
    // lower on the instance that wrote it, or raised since): the purge never cuts below it.
    const retainDays = Math.max(policy.retainDays, c.minRetainDays ?? 0);
    const cutoff = cutoffFor(retainDays, started);
    const base = { category, cutoff: cutoff.toISOString(), retainDays };
    if (o.dryRun) {
      const eligible = await service.eligible(c, cutoff);
      return { ...base, dryRun: true, eligible, purged: 0, batches: 0, status: 'dry-run', durationMs: Date.now() - started };
    }
    // One purge per category at a time across instances: the job's own lock covers the job, not a manual run.
    const outcome = await database.withAdvisoryLock(
      lockKey(`retention:${category}`),
      async () => {
        try {
          const done = await service.purge(c, cutoff, { ...deps.options, signal: o.signal, onBatch: (n) => deps.onBatch?.(category, n) });
          const result: RunResult = { ...base, dryRun: false, eligible: null, purged: done.purged, batches: done.batches, status: done.status, durationMs: Date.now() - started };
          await database.db.transaction(async (tx) => {
            await service.recordRun(tx, policy.id, { at: new Date(started), status: done.status, purged: done.purged });
            if (done.purged > 0 || o.auditEmpty !== false) await o.audit(tx, { operation: 'retention.purge', targetType: 'retention-policy', targetId: category, after: result });
          });
          deps.onRun?.(category, done.status);
          return result;
        } catch (err) {
          const error = safeMessage(err).slice(0, 500);
          log.warn({ category, err: { message: error } }, 'retention purge failed');
          deps.onRun?.(category, 'failed');
          await database.db
            .transaction(async (tx) => {
              await service.recordRun(tx, policy.id, { at: new Date(started), status: 'failed', purged: 0, error });
              await o.audit(tx, { operation: 'retention.purge', targetType: 'retention-policy', targetId: category, result: 'failure', after: { ...base, error } });
            })
            .catch(() => {});
          throw err;
        }
      },
      { wait: false },
    );
    if (outcome === undefined) throw new ProblemError('conflict', { detail: `A purge of '${category}' is already running.`, extensions: { category } });
    return outcome;
  }

  return {
    run,
    async runAll(audit, signal) {
      const results: RunResult[] = [];
      for (const policy of await service.enabledPolicies()) {
        if (signal?.aborted) break;
        try {
          service.categoryOf(policy.category);
        } catch {
          continue; // its pack is disabled: the policy waits
        }
        try {
          const result = await run(policy.category, { dryRun: false, audit, auditEmpty: false, signal });
          if (result) results.push(result);
        } catch (err) {
          log.warn({ category: policy.category, err: { message: safeMessage(err) } }, 'retention purge skipped');
        }
      }
      return results;
    },
  };
}
