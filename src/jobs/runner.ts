import type { FastifyBaseLogger } from 'fastify';
import { and, eq, inArray, lt, lte, or, sql } from 'drizzle-orm';
import { lockKey, type Database, type DbOrTx } from '../../db/client.js';
import { jobQueue, jobSchedules } from './table.js';
import { safeMessage } from '../secrets.js';

/**
 * The kernel's job runner. Queued jobs are rows in `job_queue`, claimed with
 * `FOR UPDATE SKIP LOCKED` and held by a lease (a crashed worker's claim is taken over when the
 * lease runs out). Periodic jobs run under a session advisory lock and a `next_run_at` row, so a
 * period runs once across every instance. With `RUN_JOBS=false` an instance only enqueues.
 */
export interface QueuedJobDefinition<P> {
  name: string;
  handler: (payload: P, ctx: JobContext) => Promise<void>;
  maxAttempts?: number;
  /** How long a claim lasts before another worker may take the job over. */
  leaseMs?: number;
  /** Delay before retry `attempt` (1-based); default exponential from 1 s with jitter, capped at 10 min. */
  backoffMs?: (attempt: number) => number;
  /**
   * Renew the lease every third of `leaseMs` while the handler runs, so a short lease detects a
   * dead worker (SIGKILL, OOM) quickly however long a live one takes.
   */
  heartbeat?: boolean;
  /**
   * Called once when the job is given up (`dead`): its last attempt failed, or its lease ran out
   * with no attempt left (the worker died every time). Lets the owner fail what the job was for.
   */
  onDead?: (payload: P, error: string) => Promise<void>;
}

/**
 * Thrown by a handler that stopped because the runner is shutting down (`ctx.signal`): the job is
 * handed back (queued, due now) without counting the attempt, as a shutdown is not a failure.
 */
export class JobInterrupted extends Error {
  constructor(message = 'interrupted by shutdown') {
    super(message);
    this.name = 'JobInterrupted';
  }
}

export interface PeriodicJobDefinition {
  name: string;
  intervalMs: number;
  /**
   * Runs on every instance (with RUN_JOBS) on its own clock, without a lock or schedule row:
   * for work about the instance itself, such as snapshotting its own metrics.
   */
  perInstance?: boolean;
  handler: (ctx: JobContext) => Promise<void>;
}

export interface JobContext {
  jobName: string;
  attempt: number;
  log: FastifyBaseLogger;
  signal: AbortSignal;
}

export interface JobRunner {
  defineQueued<P>(def: QueuedJobDefinition<P>): void;
  definePeriodic(def: PeriodicJobDefinition): void;
  /** Enqueues inside `tx` when given, so the job exists only if the caller's write commits. */
  enqueue<P>(name: string, payload: P, opts?: { tx?: DbOrTx; runAt?: Date; maxAttempts?: number }): Promise<number>;
  start(): void;
  stop(): Promise<void>;
  /** One pass of claiming and running due queued jobs; returns how many ran. */
  runDueQueued(limit?: number): Promise<number>;
  /** Runs each due periodic job once if this instance wins it; returns the names it ran. */
  runDuePeriodic(): Promise<string[]>;
  /** Jobs waiting, running or given up on (one grouped count on the status index), for the admin overview. */
  backlog(): Promise<JobBacklog>;
  readonly running: boolean;
  readonly definitions: { queued: string[]; periodic: string[] };
}

export interface JobBacklog {
  queued: number;
  /** Due now (`run_at` passed): queued work nobody has claimed yet. */
  due: number;
  running: number;
  dead: number;
}

export interface JobRunnerOptions {
  database: Database;
  log: FastifyBaseLogger;
  instanceId: string;
  pollIntervalMs: number;
  concurrency?: number;
  onOutcome?: (job: string, outcome: 'succeeded' | 'failed' | 'dead' | 'periodic_ok' | 'periodic_failed') => void;
}

const defaultBackoff = (attempt: number): number => {
  const base = Math.min(600_000, 1000 * 2 ** (attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
};

const safeError = (err: unknown): string => safeMessage(err).slice(0, 500);

export function createJobRunner(opts: JobRunnerOptions): JobRunner {
  const { database, log, instanceId } = opts;
  const db = database.db;
  const queued = new Map<string, QueuedJobDefinition<unknown>>();
  const periodic = new Map<string, PeriodicJobDefinition>();
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let tick: Promise<void> | undefined;
  let started = false;
  const concurrency = opts.concurrency ?? 4;

  async function notifyDead(name: string, payload: unknown, error: string): Promise<void> {
    try {
      await queued.get(name)?.onDead?.(payload, error);
    } catch (err) {
      log.warn({ job: name, err: { message: safeError(err) } }, 'a job given-up listener failed');
    }
  }

  async function runDueQueued(limit = concurrency): Promise<number> {
    const names = [...queued.keys()];
    if (names.length === 0) return 0;
    const now = new Date();
    const givenUp: Array<{ name: string; payload: unknown; error: string }> = [];
    const claimed = await db.transaction(async (tx) => {
      const due = await tx
        .select({ id: jobQueue.id, name: jobQueue.name, status: jobQueue.status, attempts: jobQueue.attempts, maxAttempts: jobQueue.maxAttempts, payload: jobQueue.payload })
        .from(jobQueue)
        .where(
          and(
            inArray(jobQueue.name, names),
            or(
              and(eq(jobQueue.status, 'queued'), lte(jobQueue.runAt, now)),
              and(eq(jobQueue.status, 'running'), lt(jobQueue.lockedUntil, now)),
            ),
          ),
        )
        .orderBy(jobQueue.runAt, jobQueue.id)
        .limit(limit)
        .for('update', { skipLocked: true });
      if (due.length === 0) return [];
      const rows = [];
      for (const { id, name, status, attempts, maxAttempts, payload } of due) {
        if (status === 'running' && attempts >= maxAttempts) {
          // Its last attempt's worker died (the lease ran out): given up rather than retried forever.
          const error = 'the worker running its last attempt stopped without finishing (lease expired)';
          await tx.update(jobQueue).set({ status: 'dead', lastError: error, finishedAt: new Date(), updatedAt: new Date(), lockedBy: null, lockedUntil: null }).where(eq(jobQueue.id, id));
          givenUp.push({ name, payload, error });
          continue;
        }
        const lease = queued.get(name)?.leaseMs ?? 60_000;
        const [row] = await tx
          .update(jobQueue)
          .set({ status: 'running', attempts: sql`${jobQueue.attempts} + 1`, lockedBy: instanceId, lockedUntil: new Date(Date.now() + lease), updatedAt: new Date() })
          .where(eq(jobQueue.id, id))
          .returning();
        if (row) rows.push(row);
      }
      return rows;
    });
    for (const g of givenUp) await notifyDead(g.name, g.payload, g.error);

    await Promise.all(
      claimed.map(async (job) => {
        const def = queued.get(job.name)!;
        const jobLog = log.child({ job: job.name, jobId: job.id, attempt: job.attempts });
        const leaseMs = def.leaseMs ?? 60_000;
        const heartbeat = def.heartbeat
          ? setInterval(() => {
              db.update(jobQueue)
                .set({ lockedUntil: new Date(Date.now() + leaseMs), updatedAt: new Date() })
                .where(and(eq(jobQueue.id, job.id), eq(jobQueue.lockedBy, instanceId), eq(jobQueue.status, 'running')))
                .catch((e: unknown) => jobLog.warn({ err: { message: safeError(e) } }, 'could not renew the job lease'));
            }, Math.max(10, Math.floor(leaseMs / 3)))
          : undefined;
        heartbeat?.unref();
        try {
          await def.handler(job.payload, { jobName: job.name, attempt: job.attempts, log: jobLog, signal: controller.signal });
          await db
            .update(jobQueue)
            .set({ status: 'succeeded', finishedAt: new Date(), updatedAt: new Date(), lockedBy: null, lockedUntil: null, lastError: null })
            .where(and(eq(jobQueue.id, job.id), eq(jobQueue.lockedBy, instanceId)));
          opts.onOutcome?.(job.name, 'succeeded');
        } catch (err) {
          if (err instanceof JobInterrupted && controller.signal.aborted) {
            // Shutdown: handed back for this or another instance, the attempt not counted.
            jobLog.info('job interrupted by shutdown; handed back');
            await db
              .update(jobQueue)
              .set({ status: 'queued', attempts: sql`greatest(${jobQueue.attempts} - 1, 0)`, lastError: safeError(err), runAt: new Date(), updatedAt: new Date(), lockedBy: null, lockedUntil: null })
              .where(and(eq(jobQueue.id, job.id), eq(jobQueue.lockedBy, instanceId)))
              .catch((e: unknown) => jobLog.warn({ err: { message: safeError(e) } }, 'could not hand the job back; the lease will expire'));
            return;
          }
          const dead = job.attempts >= job.maxAttempts;
          const backoff = (def.backoffMs ?? defaultBackoff)(job.attempts);
          jobLog.warn({ err: { message: safeError(err) }, dead }, 'job failed');
          await db
            .update(jobQueue)
            .set({
              status: dead ? 'dead' : 'queued',
              lastError: safeError(err),
              runAt: new Date(Date.now() + backoff),
              finishedAt: dead ? new Date() : null,
              updatedAt: new Date(),
              lockedBy: null,
              lockedUntil: null,
            })
            .where(and(eq(jobQueue.id, job.id), eq(jobQueue.lockedBy, instanceId)))
            .catch((e: unknown) => jobLog.warn({ err: { message: safeError(e) } }, 'could not record job failure; the lease will expire'));
          opts.onOutcome?.(job.name, dead ? 'dead' : 'failed');
          if (dead) await notifyDead(job.name, job.payload, safeError(err));
        } finally {
          if (heartbeat) clearInterval(heartbeat);
        }
      }),
    );
    return claimed.length;
  }

  const localNextRun = new Map<string, number>();

  async function runLocalPeriodic(def: PeriodicJobDefinition): Promise<boolean> {
    const now = Date.now();
    if ((localNextRun.get(def.name) ?? 0) > now) return false;
    localNextRun.set(def.name, now + def.intervalMs);
    const jobLog = log.child({ job: def.name });
    try {
      await def.handler({ jobName: def.name, attempt: 1, log: jobLog, signal: controller.signal });
      opts.onOutcome?.(def.name, 'periodic_ok');
    } catch (err) {
      jobLog.warn({ err: { message: safeError(err) } }, 'periodic job failed');
      opts.onOutcome?.(def.name, 'periodic_failed');
    }
    return true;
  }

  async function runOnePeriodic(def: PeriodicJobDefinition): Promise<boolean> {
    if (def.perInstance) return runLocalPeriodic(def);
    const ran = await database.withAdvisoryLock(
      lockKey(`periodic:${def.name}`),
      async () => {
        const now = new Date();
        await db.insert(jobSchedules).values({ name: def.name, intervalMs: def.intervalMs, nextRunAt: now }).onConflictDoNothing();
        // Claim this period: only one instance moves next_run_at forward past now.
        const [claim] = await db
          .update(jobSchedules)
          .set({ nextRunAt: new Date(now.getTime() + def.intervalMs), intervalMs: def.intervalMs, lastRunBy: instanceId, updatedAt: now })
          .where(and(eq(jobSchedules.name, def.name), lte(jobSchedules.nextRunAt, now)))
          .returning({ name: jobSchedules.name });
        if (!claim) return false;
        const started = Date.now();
        const jobLog = log.child({ job: def.name });
        try {
          await def.handler({ jobName: def.name, attempt: 1, log: jobLog, signal: controller.signal });
          await db.update(jobSchedules).set({ lastRunAt: now, lastStatus: 'succeeded', lastError: null, lastDurationMs: Date.now() - started }).where(eq(jobSchedules.name, def.name));
          opts.onOutcome?.(def.name, 'periodic_ok');
        } catch (err) {
          jobLog.warn({ err: { message: safeError(err) } }, 'periodic job failed');
          await db
            .update(jobSchedules)
            .set({ lastRunAt: now, lastStatus: 'failed', lastError: safeError(err), lastDurationMs: Date.now() - started })
            .where(eq(jobSchedules.name, def.name))
            .catch(() => {});
          opts.onOutcome?.(def.name, 'periodic_failed');
        }
        return true;
      },
      { wait: false },
    );
    return ran === true;
  }

  async function runDuePeriodic(): Promise<string[]> {
    const ran: string[] = [];
    for (const def of periodic.values()) {
      if (controller.signal.aborted) break;
      if (await runOnePeriodic(def)) ran.push(def.name);
    }
    return ran;
  }

  // Polls that failed in a row: during a database outage the runner polls every tick, and one
  // warning per outage (plus one line when it recovers) tells the operator as much as one per second.
  let failedPolls = 0;
  async function loop(): Promise<void> {
    try {
      await runDuePeriodic();
      // Keep claiming while there is a backlog, then wait for the next poll.
      while (!controller.signal.aborted && (await runDueQueued()) > 0);
      if (failedPolls > 0) log.info({ failedPolls }, 'job poll recovered');
      failedPolls = 0;
    } catch (err) {
      failedPolls += 1;
      if (failedPolls === 1) log.warn({ err: { message: safeError(err) } }, 'job poll failed; retrying every tick, logging again when it recovers');
      else log.debug({ err: { message: safeError(err) }, failedPolls }, 'job poll failed again');
    }
  }

  return {
    defineQueued<P>(def: QueuedJobDefinition<P>) {
      if (queued.has(def.name) || periodic.has(def.name)) throw new Error(`job '${def.name}' defined twice`);
      queued.set(def.name, def as QueuedJobDefinition<unknown>);
    },
    definePeriodic(def) {
      if (queued.has(def.name) || periodic.has(def.name)) throw new Error(`job '${def.name}' defined twice`);
      periodic.set(def.name, def);
    },
    async enqueue(name, payload, o = {}) {
      const [row] = await (o.tx ?? db)
        .insert(jobQueue)
        .values({ name, payload: payload ?? {}, runAt: o.runAt ?? new Date(), maxAttempts: o.maxAttempts ?? queued.get(name)?.maxAttempts ?? 5 })
        .returning({ id: jobQueue.id });
      return row!.id;
    },
    start() {
      if (started) return;
      started = true;
      timer = setInterval(() => {
        if (!tick) tick = loop().finally(() => (tick = undefined));
      }, opts.pollIntervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      controller.abort();
      if (tick) await tick;
      started = false;
    },
    runDueQueued,
    runDuePeriodic,
    async backlog() {
      const rows = await db
        .select({
          status: jobQueue.status,
          count: sql<number>`count(*)::int`,
          due: sql<number>`count(*) filter (where ${jobQueue.runAt} <= now())::int`,
        })
        .from(jobQueue)
        .where(inArray(jobQueue.status, ['queued', 'running', 'dead']))
        .groupBy(jobQueue.status);
      const of = (status: string) => rows.find((r) => r.status === status);
      return { queued: of('queued')?.count ?? 0, due: of('queued')?.due ?? 0, running: of('running')?.count ?? 0, dead: of('dead')?.count ?? 0 };
    },
    get running() {
      return started;
    },
    get definitions() {
      return { queued: [...queued.keys()], periodic: [...periodic.keys()] };
    },
  };
}
