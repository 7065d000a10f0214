import { setTimeout as sleep } from 'node:timers/promises';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { SYSTEM_ACTOR } from '../../src/audit/writer.js';
import { jobQueue, jobSchedules } from '../../src/jobs/table.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { metricValue } from '../../test/helpers/metrics.js';
import { AUDIT_CHAIN_JOB, JOB_FIGURES_JOB } from './gauges.js';

// Its own app and database: these tests break the audit chain on purpose.
const REFRESH_MS = 100;
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ METRICS_REFRESH_INTERVAL_MS: REFRESH_MS });
});
afterAll(async () => t?.close());

const metric = (name: string, labels: Record<string, string> = {}) => metricValue(t.app, name, labels);
/** One pass of the periodic jobs, once the per-instance ones are due again. */
const runPeriodic = async () => {
  await sleep(REFRESH_MS + 20);
  return t.app.jobs.runDuePeriodic();
};

describe('valhalla_ready', () => {
  it('says 1 once /ready passes, with one series per check', async () => {
    expect((await t.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
    expect(await metric('valhalla_ready')).toBe(1);
    for (const check of ['database', 'migrations', 'state-listener', 'draining', 'pressure']) expect(await metric('valhalla_ready_check', { check }), check).toBe(1);
  });

  it('falls to 0 as soon as the instance drains, without a probe in between', async () => {
    t.app.lifecycle.draining = true;
    try {
      expect(await metric('valhalla_ready')).toBe(0);
      expect(await metric('valhalla_ready_check', { check: 'draining' })).toBe(0);
      expect(await metric('valhalla_ready_check', { check: 'database' })).toBe(1);
    } finally {
      t.app.lifecycle.draining = false;
    }
    expect(await metric('valhalla_ready')).toBe(1);
  });

  it('is checked by a timer on an instance nobody probes', async () => {
    const other = await t.another({ METRICS_REFRESH_INTERVAL_MS: REFRESH_MS });
    await other.ready();
    const deadline = Date.now() + 5000;
    while ((await metricValue(other, 'valhalla_ready_check', { check: 'database' })) === undefined && Date.now() < deadline) await sleep(50);
    expect(await metricValue(other, 'valhalla_ready_check', { check: 'database' })).toBe(1);
    expect(await metricValue(other, 'valhalla_ready')).toBe(1);
  });
});

describe('valhalla_job_backlog', () => {
  it('has no series before its job ran, then counts due, scheduled and dead jobs after each refresh', async () => {
    expect(t.app.jobs.definitions.periodic).toContain(JOB_FIGURES_JOB);
    expect(await metric('valhalla_job_backlog', { status: 'due' })).toBeUndefined();
    await runPeriodic();
    const before = { due: (await metric('valhalla_job_backlog', { status: 'due' }))!, scheduled: (await metric('valhalla_job_backlog', { status: 'scheduled' }))!, dead: (await metric('valhalla_job_backlog', { status: 'dead' }))! };
    expect(before.due).toEqual(expect.any(Number));

    // Nobody defines this job, so nothing claims it: it stays due.
    const dueId = await t.app.jobs.enqueue('gauges-test:unclaimed', {});
    await t.app.jobs.enqueue('gauges-test:unclaimed', {}, { runAt: new Date(Date.now() + 3_600_000) });
    // Not refreshed yet: a scrape never queries the database.
    expect(await metric('valhalla_job_backlog', { status: 'due' })).toBe(before.due);
    await runPeriodic();
    expect(await metric('valhalla_job_backlog', { status: 'due' })).toBe(before.due + 1);
    expect(await metric('valhalla_job_backlog', { status: 'scheduled' })).toBe(before.scheduled + 1);

    await t.app.db.update(jobQueue).set({ status: 'dead', finishedAt: new Date() }).where(eq(jobQueue.id, dueId));
    await runPeriodic();
    expect(await metric('valhalla_job_backlog', { status: 'due' })).toBe(before.due);
    expect(await metric('valhalla_job_backlog', { status: 'dead' })).toBe(before.dead + 1);
  });
});

describe('valhalla_audit_chain_ok', () => {
  const chain = { chain: 'admin_operations' };
  /** Makes the cluster-wide verification due again (its period is an hour here). */
  const dueAgain = () => t.app.db.update(jobSchedules).set({ nextRunAt: new Date(Date.now() - 1000) }).where(eq(jobSchedules.name, AUDIT_CHAIN_JOB));
  const newestId = async () => (await t.app.db.select({ id: sql<number>`max(${adminOperations.id})::int` }).from(adminOperations))[0]!.id;

  it('reports an intact chain with the newest entry verified and when', async () => {
    for (let i = 0; i < 3; i++) {
      await t.app.db.transaction((tx) => t.app.audit.record(tx, null, { actor: SYSTEM_ACTOR, operation: 'gauges.test', targetType: 'thing', targetId: i, reason: `step ${i}` }));
    }
    await dueAgain();
    const before = Date.now() / 1000;
    expect(await runPeriodic()).toContain(AUDIT_CHAIN_JOB);
    expect(await metric('valhalla_audit_chain_ok', chain)).toBe(1);
    expect(await metric('valhalla_audit_chain_verified_id', chain)).toBe(await newestId());
    expect(await metric('valhalla_audit_chain_first_broken_id', chain)).toBe(0);
    expect(await metric('valhalla_audit_chain_verified_timestamp_seconds', chain)).toBeGreaterThanOrEqual(Math.floor(before));
  });

  it('says 0 and names the entry after one is edited behind the API, and 1 again once it is undone', async () => {
    const ids = (await t.app.db.select({ id: adminOperations.id }).from(adminOperations).orderBy(adminOperations.id)).map((r) => r.id);
    const victim = ids[ids.length - 2]!;
    const [original] = await t.app.db.select({ reason: adminOperations.reason }).from(adminOperations).where(eq(adminOperations.id, victim));
    await t.app.db.update(adminOperations).set({ reason: 'rewritten' }).where(eq(adminOperations.id, victim));
    // The next period has not come: the gauge still shows the last walk.
    expect(await runPeriodic()).not.toContain(AUDIT_CHAIN_JOB);
    expect(await metric('valhalla_audit_chain_ok', chain)).toBe(1);

    await dueAgain();
    expect(await runPeriodic()).toContain(AUDIT_CHAIN_JOB);
    expect(await metric('valhalla_audit_chain_ok', chain)).toBe(0);
    expect(await metric('valhalla_audit_chain_first_broken_id', chain)).toBe(victim);
    expect(await metric('valhalla_audit_chain_verified_id', chain)).toBe(ids[ids.length - 3]);

    await t.app.db.update(adminOperations).set({ reason: original!.reason }).where(eq(adminOperations.id, victim));
    await dueAgain();
    await runPeriodic();
    expect(await metric('valhalla_audit_chain_ok', chain)).toBe(1);
    expect(await metric('valhalla_audit_chain_first_broken_id', chain)).toBe(0);
  });

  it('is not defined with AUDIT_VERIFY_INTERVAL_MS=0', async () => {
    const off = await t.another({ AUDIT_VERIFY_INTERVAL_MS: 0 });
    expect(off.jobs.definitions.periodic).not.toContain(AUDIT_CHAIN_JOB);
    expect(await metricValue(off, 'valhalla_audit_chain_ok', chain)).toBeUndefined();
  });
});
