import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobRunner, JobInterrupted } from '../../src/jobs/runner.js';
import { jobQueue, jobSchedules } from '../../src/jobs/table.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

const silent = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, fatal() {}, child() { return silent; }, level: 'silent', silent() {} };

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

function runner(database = t.db.database, instanceId = 'a') {
  return createJobRunner({ database, log: silent, instanceId, pollIntervalMs: 50 });
}

describe('job runner', () => {
  it('runs a queued job once and records success', async () => {
    const r = runner();
    const seen: unknown[] = [];
    r.defineQueued<{ n: number }>({ name: 'once', handler: async (p) => void seen.push(p.n) });
    const id = await r.enqueue('once', { n: 1 });
    expect(await r.runDueQueued()).toBe(1);
    expect(await r.runDueQueued()).toBe(0);
    expect(seen).toEqual([1]);
    const [row] = await t.app.db.select().from(jobQueue).where(eq(jobQueue.id, id));
    expect(row).toMatchObject({ status: 'succeeded', attempts: 1 });
  });

  it('retries a failing job with backoff and marks it dead after the last attempt', async () => {
    const r = runner();
    let calls = 0;
    r.defineQueued({ name: 'flaky', maxAttempts: 2, backoffMs: () => 0, handler: async () => {
      calls++;
      throw new Error('boom postgres://user:pw@host');
    } });
    const id = await r.enqueue('flaky', {});
    await r.runDueQueued();
    let [row] = await t.app.db.select().from(jobQueue).where(eq(jobQueue.id, id));
    expect(row).toMatchObject({ status: 'queued', attempts: 1 });
    await new Promise((res) => setTimeout(res, 5));
    await r.runDueQueued();
    [row] = await t.app.db.select().from(jobQueue).where(eq(jobQueue.id, id));
    expect(row).toMatchObject({ status: 'dead', attempts: 2 });
    expect(calls).toBe(2);
  });

  it('does not run a job whose enqueueing transaction rolled back', async () => {
    const r = runner();
    let ran = false;
    r.defineQueued({ name: 'ghost', handler: async () => void (ran = true) });
    await expect(t.app.db.transaction(async (tx) => {
      await r.enqueue('ghost', {}, { tx });
      throw new Error('rollback');
    })).rejects.toThrow('rollback');
    expect(await r.runDueQueued()).toBe(0);
    expect(ran).toBe(false);
  });

  it('takes over a job whose lease expired (crashed worker)', async () => {
    const r = runner(t.db.database, 'survivor');
    let ran = 0;
    r.defineQueued({ name: 'orphan', handler: async () => void ran++ });
    const [row] = await t.app.db
      .insert(jobQueue)
      .values({ name: 'orphan', status: 'running', attempts: 1, lockedBy: 'crashed', lockedUntil: new Date(Date.now() - 1000) })
      .returning();
    expect(await r.runDueQueued()).toBe(1);
    expect(ran).toBe(1);
    const [after] = await t.app.db.select().from(jobQueue).where(eq(jobQueue.id, row!.id));
    expect(after).toMatchObject({ status: 'succeeded', attempts: 2 });
  });

  it('gives up (dead, onDead told) a running job whose lease expired with no attempt left, instead of retrying it forever', async () => {
    const r = runner(t.db.database, 'survivor');
    let ran = 0;
    const givenUp: Array<[unknown, string]> = [];
    r.defineQueued<{ k: string }>({ name: 'oom-every-time', maxAttempts: 3, handler: async () => void ran++, onDead: async (p, error) => void givenUp.push([p, error]) });
    const [row] = await t.app.db
      .insert(jobQueue)
      .values({ name: 'oom-every-time', payload: { k: 'x' }, status: 'running', attempts: 3, maxAttempts: 3, lockedBy: 'crashed', lockedUntil: new Date(Date.now() - 1000) })
      .returning();
    expect(await r.runDueQueued()).toBe(0);
    expect(ran).toBe(0);
    const [after] = await t.app.db.select().from(jobQueue).where(eq(jobQueue.id, row!.id));
    expect(after).toMatchObject({ status: 'dead', attempts: 3, lockedBy: null });
    expect(givenUp).toEqual([[{ k: 'x' }, expect.stringContaining('lease expired')]]);
  });

  it('tells onDead when the last attempt fails', async () => {
    const r = runner();
    const givenUp: string[] = [];
    r.defineQueued({ name: 'fails-once', maxAttempts: 1, handler: async () => { throw new Error('nope'); }, onDead: async (_p, error) => void givenUp.push(error) });
    await r.enqueue('fails-once', {});
    await r.runDueQueued();
    expect(givenUp).toEqual(['nope']);
  });

  it('hands a job interrupted by shutdown back without counting the attempt', async () => {
    const r = runner();
    let calls = 0;
    let stopping: Promise<void> | undefined;
    r.defineQueued({ name: 'interrupted', maxAttempts: 1, handler: async (_p, ctx) => {
      calls++;
      stopping = r.stop(); // SIGTERM while it runs
      if (ctx.signal.aborted) throw new JobInterrupted();
    } });
    const id = await r.enqueue('interrupted', {});
    await r.runDueQueued();
    await stopping;
    const [row] = await t.app.db.select().from(jobQueue).where(eq(jobQueue.id, id));
    expect(row).toMatchObject({ status: 'queued', attempts: 0, lockedBy: null, lastError: 'interrupted by shutdown' });
    expect(calls).toBe(1);
    // A JobInterrupted thrown when the runner is not stopping is an ordinary failure.
    const r2 = runner();
    r2.defineQueued({ name: 'interrupted', maxAttempts: 1, handler: async () => { throw new JobInterrupted(); } });
    await r2.runDueQueued();
    const [again] = await t.app.db.select().from(jobQueue).where(eq(jobQueue.id, id));
    expect(again).toMatchObject({ status: 'dead', attempts: 1 });
  });

  it('renews the lease of a heartbeat job while it runs, so a short lease does not expire under a live worker', async () => {
    const r = runner(t.db.database, 'live');
    let release!: () => void;
    const held = new Promise<void>((res) => (release = res));
    r.defineQueued({ name: 'long', leaseMs: 300, heartbeat: true, handler: async () => held });
    const id = await r.enqueue('long', {});
    const pass = r.runDueQueued();
    const lease = async () => (await t.app.db.select().from(jobQueue).where(eq(jobQueue.id, id)))[0]!;
    await expect.poll(async () => (await lease()).status).toBe('running');
    const first = (await lease()).lockedUntil!.getTime();
    // Renewed at least once past its first deadline, and still held by the live worker.
    await expect.poll(async () => (await lease()).lockedUntil!.getTime(), { timeout: 5_000 }).toBeGreaterThan(first + 150);
    const other = runner(t.db.database, 'other');
    let stolen = 0;
    other.defineQueued({ name: 'long', leaseMs: 300, handler: async () => void stolen++ });
    await other.runDueQueued();
    expect(stolen).toBe(0);
    release();
    await pass;
    expect(await lease()).toMatchObject({ status: 'succeeded', lockedBy: null });
  });

  it('runs a periodic job once per interval', async () => {
    const r = runner();
    let runs = 0;
    r.definePeriodic({ name: 'tick', intervalMs: 60_000, handler: async () => void runs++ });
    expect(await r.runDuePeriodic()).toEqual(['tick']);
    expect(await r.runDuePeriodic()).toEqual([]);
    expect(runs).toBe(1);
    const [row] = await t.app.db.select().from(jobSchedules).where(eq(jobSchedules.name, 'tick'));
    expect(row).toMatchObject({ lastStatus: 'succeeded', lastRunBy: 'a' });
  });

  it('runs a per-instance periodic job on every instance, once per interval each, with no schedule row', async () => {
    const a = runner(t.db.database, 'a');
    const b = runner(t.db.database, 'b');
    const seen: string[] = [];
    a.definePeriodic({ name: 'self', intervalMs: 60_000, perInstance: true, handler: async () => void seen.push('a') });
    b.definePeriodic({ name: 'self', intervalMs: 60_000, perInstance: true, handler: async () => void seen.push('b') });
    expect(await a.runDuePeriodic()).toEqual(['self']);
    expect(await b.runDuePeriodic()).toEqual(['self']);
    expect(await a.runDuePeriodic()).toEqual([]);
    expect(seen).toEqual(['a', 'b']);
    expect(await t.app.db.select().from(jobSchedules).where(eq(jobSchedules.name, 'self'))).toEqual([]);
  });

  describe.skipIf(!process.env.TEST_DATABASE_URL && !process.env.DATABASE_URL)('several instances (PostgreSQL)', () => {
    it('two runners on separate pools never run the same queued job twice', async () => {
      const other = await t.db.connectAgain();
      const runs = new Map<number, number>();
      const handler = async (p: { i: number }) => {
        runs.set(p.i, (runs.get(p.i) ?? 0) + 1);
        await new Promise((res) => setTimeout(res, 2));
      };
      const a = runner(t.db.database, 'a');
      const b = runner(other, 'b');
      a.defineQueued({ name: 'shared', handler });
      b.defineQueued({ name: 'shared', handler });
      for (let i = 0; i < 60; i++) await a.enqueue('shared', { i });
      const drain = async (r: typeof a) => {
        while ((await r.runDueQueued(5)) > 0);
      };
      await Promise.all([drain(a), drain(b), drain(a), drain(b)]);
      expect(runs.size).toBe(60);
      expect([...runs.values()].every((n) => n === 1)).toBe(true);
    });

    it('a periodic job due on two instances at once runs on one', async () => {
      const other = await t.db.connectAgain();
      let runs = 0;
      const handler = async () => {
        runs++;
        await new Promise((res) => setTimeout(res, 50));
      };
      const a = runner(t.db.database, 'a');
      const b = runner(other, 'b');
      a.definePeriodic({ name: 'race', intervalMs: 60_000, handler });
      b.definePeriodic({ name: 'race', intervalMs: 60_000, handler });
      const [ra, rb] = await Promise.all([a.runDuePeriodic(), b.runDuePeriodic()]);
      expect(runs).toBe(1);
      expect([...ra, ...rb]).toEqual(['race']);
    });
  });
});
