import { Gauge, type Registry } from 'prom-client';
import type { Db } from '../../db/client.js';
import { AUDIT_CHAIN, verifyAuditChain } from '../../src/audit/writer.js';
import type { JobBacklog, JobRunner } from '../../src/jobs/runner.js';
import type { Readiness } from './service.js';

/*
 * Gauges whose figures need the database. A scrape never queries it: each figure is refreshed
 * on its own clock (a timer, or a periodic job) and the gauge reads what was last seen. When a
 * refresh fails, the job figures' series are removed rather than left at a stale value, so an
 * alert on them goes quiet instead of lying (the readiness alerts cover the outage itself).
 */

/**
 * `valhalla_ready` (1/0, what /ready would answer) and `valhalla_ready_check{check}` (1/0 per
 * check). Draining, pressure and the state listener are read from memory at each scrape (a
 * draining instance reads 0 at once); the database and migration checks are those of the last
 * /ready probe or of the refresh timer, whichever ran last.
 */
export function readinessGauges(deps: { registry: Registry; readiness: Pick<Readiness, 'lastKnown'> }): void {
  new Gauge({
    name: 'valhalla_ready',
    help: '1 when this instance would answer /ready with 200, else 0 (database checks as of the last probe or refresh)',
    registers: [deps.registry],
    collect() {
      this.set(deps.readiness.lastKnown()?.ready ? 1 : 0);
    },
  });
  new Gauge({
    name: 'valhalla_ready_check',
    help: 'Each readiness check: 1 passing, 0 failing (database, migrations, state-listener, draining, pressure)',
    labelNames: ['check'],
    registers: [deps.registry],
    collect() {
      for (const c of deps.readiness.lastKnown()?.checks ?? []) this.set({ check: c.name }, c.ok ? 1 : 0);
    },
  });
}

export const JOB_FIGURES_JOB = 'health:job-figures';

/**
 * `valhalla_job_backlog{status}`: jobs in the queue, from one grouped count on the status index,
 * refreshed by a periodic job on every instance that runs jobs. The figure is the cluster's (one
 * queue), so every such instance reports the same: aggregate with `max`, not `sum`.
 */
export function defineJobFigures(deps: { registry: Registry; jobs: Pick<JobRunner, 'definePeriodic' | 'backlog'>; intervalMs: number }): void {
  const backlog = new Gauge({
    name: 'valhalla_job_backlog',
    help: 'Queued jobs of the whole cluster by status: due (run_at passed, nobody claimed it yet), scheduled (later), running, dead (given up); the same on every instance running jobs',
    labelNames: ['status'],
    registers: [deps.registry],
  });
  deps.jobs.definePeriodic({
    name: JOB_FIGURES_JOB,
    intervalMs: deps.intervalMs,
    perInstance: true,
    async handler() {
      let b: JobBacklog;
      try {
        b = await deps.jobs.backlog();
      } catch (err) {
        backlog.reset();
        throw err;
      }
      backlog.set({ status: 'due' }, b.due);
      backlog.set({ status: 'scheduled' }, b.queued - b.due);
      backlog.set({ status: 'running' }, b.running);
      backlog.set({ status: 'dead' }, b.dead);
    },
  });
}

export const AUDIT_CHAIN_JOB = 'health:audit-chain-verify';

/**
 * `valhalla_audit_chain_ok` from a walk of the whole audit hash chain (what
 * `GET /system/admin/operations/verify` does), once per `intervalMs` across the cluster (a
 * periodic job: one instance per period). Only the instance that ran the latest walk carries
 * its result: alert on the series with the newest `valhalla_audit_chain_verified_timestamp_seconds`.
 */
export function defineAuditChainVerification(deps: {
  registry: Registry;
  jobs: Pick<JobRunner, 'definePeriodic'>;
  db: Db;
  intervalMs: number;
}): void {
  // Labelled by chain so that the series exist only on an instance that has walked it: an
  // unlabelled gauge would read 0 ("broken") everywhere else.
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ['chain'], registers: [deps.registry] });
  const ok = gauge('valhalla_audit_chain_ok', '1 when the last walk of the audit hash chain found it intact, 0 when it found an entry changed or missing');
  const lastId = gauge('valhalla_audit_chain_verified_id', 'The newest audit entry the last walk found intact (the chain holds up to it); 0 when none');
  const brokenId = gauge('valhalla_audit_chain_first_broken_id', 'The first audit entry the last walk found changed or unlinked; 0 when the chain is intact');
  const at = gauge('valhalla_audit_chain_verified_timestamp_seconds', 'When the last walk of the audit hash chain finished (Unix seconds)');
  const chain = { chain: AUDIT_CHAIN };
  deps.jobs.definePeriodic({
    name: AUDIT_CHAIN_JOB,
    intervalMs: deps.intervalMs,
    async handler(ctx) {
      const started = Date.now();
      const v = await verifyAuditChain(deps.db);
      ok.set(chain, v.ok ? 1 : 0);
      lastId.set(chain, v.lastVerifiedId ?? 0);
      brokenId.set(chain, v.firstBrokenId ?? 0);
      at.set(chain, Date.now() / 1000);
      const report = { checked: v.checked, firstBrokenId: v.firstBrokenId, problem: v.problem, durationMs: Date.now() - started };
      if (v.ok) ctx.log.debug(report, 'audit chain intact');
      else ctx.log.error(report, 'audit chain broken: an entry was changed or removed behind the API');
    },
  });
}
