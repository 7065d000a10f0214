import { asc, eq, sql } from 'drizzle-orm';
import { getTableConfig } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockKey, queryRows } from '../../db/client.js';
import { adminOperations, auditChainAnchor } from '../../src/audit/table.js';
import { chainHash, GENESIS_HASH } from '../../src/audit/writer.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { exportJobs } from '../exports/table.js';
import { notificationOutbox } from '../notifications/table.js';
import { systemLogs } from '../system-log/table.js';

const ROOT = '/system/retention';
const DAY = 86_400_000;
const daysAgo = (n: number) => new Date(Date.now() - n * DAY);

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ RETENTION_BATCH_SIZE: 1000, RETENTION_BATCH_PAUSE_MS: 0 });
});
afterAll(async () => t?.close());

/** Old and recent rows in system_logs, straight into the table (what the log writer would have stored over time). */
async function seedLogs(old: number, recent: number, oldDays = 40) {
  const row = (occurredAt: Date, i: number) => ({ occurredAt, level: 'info' as const, source: 'test', event: 'test.seed', message: `row ${i}`, instanceId: 'test' });
  const rows = [...Array.from({ length: old }, (_, i) => row(daysAgo(oldDays), i)), ...Array.from({ length: recent }, (_, i) => row(daysAgo(1), i))];
  for (let i = 0; i < rows.length; i += 1000) await t.app.db.insert(systemLogs).values(rows.slice(i, i + 1000));
}
const countLogs = async (where = sql`true`) => Number((await queryRows<{ n: string | number }>(t.app.db, sql`select count(*) as n from ${systemLogs} where ${where}`))[0]!.n);
const seeded = sql`${systemLogs.event} = 'test.seed'`;

async function policy(category: string, body: Record<string, unknown> = {}) {
  const res = await t.inject({ method: 'POST', url: ROOT, payload: { category, ...body } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

describe('categories and policies', () => {
  it('lists the categories the kernel and the loaded packs registered, with their floors', async () => {
    const res = await t.inject({ method: 'GET', url: `${ROOT}/categories` });
    expect(res.statusCode).toBe(200);
    const items: Array<{ name: string; table: string; timeColumn: string; minRetainDays: number; defaultRetainDays: number }> = res.json().items;
    expect(items.map((c) => c.name)).toEqual(
      expect.arrayContaining(['admin_operations', 'error_events', 'job_queue', 'metrics_snapshots', 'notification_outbox', 'smoke_test_results', 'system_logs', 'trace_spans', 'export_jobs']),
    );
    expect(items.find((c) => c.name === 'admin_operations')).toMatchObject({ table: 'admin_operations', timeColumn: 'occurred_at', minRetainDays: 365, defaultRetainDays: 365 });
    expect(items.find((c) => c.name === 'system_logs')).toMatchObject({ minRetainDays: 1, defaultRetainDays: 30 });
  });

  it('every category (and so every export dataset) has an index led by its time column, for the purge and time-ranged exports', async () => {
    const categories = t.app.retention.list();
    expect(categories.length).toBeGreaterThanOrEqual(9);
    for (const c of categories) {
      const table = getTableConfig(c.table).name;
      // pg_index.indkey[0]: the first column of each index on the table.
      const rows = await queryRows<{ name: string }>(
        t.app.db,
        sql`select i.relname as name from pg_index x join pg_class i on i.oid = x.indexrelid join pg_class r on r.oid = x.indrelid
            join pg_attribute a on a.attrelid = r.oid and a.attnum = x.indkey[0]
            where r.relname = ${table} and r.relnamespace = 'public'::regnamespace and a.attname = ${c.timeColumn.name}`,
      );
      expect(rows.map((r) => r.name), `${c.name}.${c.timeColumn.name}`).not.toEqual([]);
    }
  });

  it('creates (201, Location, audited, default retention), reads, lists, changes and deletes a policy', async () => {
    const res = await t.inject({ method: 'POST', url: ROOT, payload: { category: 'trace_spans' } });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers.location).toBe(`${ROOT}/trace_spans`);
    expect(res.json()).toMatchObject({ category: 'trace_spans', retainDays: 7, enabled: true, lastRunAt: null, rowsPurgedTotal: 0 });
    const audit = await t.app.db.select().from(adminOperations).where(eq(adminOperations.operation, 'retention-policy.create'));
    expect(audit.map((a) => a.targetId)).toContain('trace_spans');

    expect((await t.inject({ method: 'GET', url: `${ROOT}/trace_spans` })).json()).toEqual(res.json());
    const patched = await t.inject({ method: 'PATCH', url: `${ROOT}/trace_spans`, payload: { retainDays: 3, enabled: false } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject({ retainDays: 3, enabled: false });
    const listed = await t.inject({ method: 'GET', url: `${ROOT}?enabled=false&limit=1` });
    expect(listed.json().items.map((p: { category: string }) => p.category)).toEqual(['trace_spans']);
    const cats = (await t.inject({ method: 'GET', url: `${ROOT}/categories` })).json().items;
    expect(cats.find((c: { name: string }) => c.name === 'trace_spans').policy).toMatchObject({ retainDays: 3 });

    expect((await t.inject({ method: 'DELETE', url: `${ROOT}/trace_spans` })).statusCode).toBe(204);
    expect((await t.inject({ method: 'GET', url: `${ROOT}/trace_spans` })).statusCode).toBe(404);
  });

  it('answers 400 for bad input, 422 for an unknown category or a retention below the floor, 409 for a second policy, 404 without a policy', async () => {
    for (const payload of [{ category: 'system_logs', extra: 1 }, { category: 'system_logs', retainDays: 0 }, { category: 'system_logs', retainDays: 40_000 }, { category: 'Bad-Name' }, { retainDays: 5 }]) {
      expect((await t.inject({ method: 'POST', url: ROOT, payload })).statusCode, JSON.stringify(payload)).toBe(400);
    }
    const unknown = await t.inject({ method: 'POST', url: ROOT, payload: { category: 'no_such_table' } });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json().detail).toContain('system_logs');
    const floor = await t.inject({ method: 'POST', url: ROOT, payload: { category: 'admin_operations', retainDays: 364 } });
    expect(floor.statusCode).toBe(422);
    expect(floor.json()).toMatchObject({ minRetainDays: 365 });

    await policy('error_events', { retainDays: 10 });
    const dup = await t.inject({ method: 'POST', url: ROOT, payload: { category: 'error_events' } });
    expect(dup.statusCode).toBe(409);
    expect((await t.inject({ method: 'PATCH', url: `${ROOT}/error_events`, payload: {} })).statusCode).toBe(400);
    expect((await t.inject({ method: 'PATCH', url: `${ROOT}/error_events`, payload: { retainDays: 'x' } })).statusCode).toBe(400);

    const missing = await t.inject({ method: 'GET', url: `${ROOT}/metrics_snapshots` });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().detail).toContain('No retention policy');
    expect((await t.inject({ method: 'GET', url: `${ROOT}/nope_nope` })).json().detail).toContain("No retention category 'nope_nope'");
    for (const [method, url] of [['PATCH', `${ROOT}/metrics_snapshots`], ['DELETE', `${ROOT}/metrics_snapshots`], ['POST', `${ROOT}/metrics_snapshots/run`], ['POST', `${ROOT}/metrics_snapshots/run?dryRun=true`]] as const) {
      expect((await t.inject({ method, url, ...(method === 'PATCH' && { payload: { enabled: true } }) })).statusCode, `${method} ${url}`).toBe(404);
    }
    expect((await t.inject({ method: 'GET', url: `${ROOT}/Bad-Name` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${ROOT}?cursor=zz` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'POST', url: `${ROOT}/error_events/run?dryRun=maybe` })).statusCode).toBe(400);
  });

  it('needs retention:read to read and retention:write to change', async () => {
    const reader = await t.keyWith(['retention:read']);
    const headers = { authorization: `Bearer ${reader.token}` };
    expect((await t.inject({ method: 'GET', url: ROOT, headers })).statusCode).toBe(200);
    expect((await t.inject({ method: 'POST', url: ROOT, headers, payload: { category: 'job_queue' } })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: ROOT })).statusCode).toBe(401);
  });
});

describe('purges', () => {
  it('dry run counts without deleting; a run deletes in batches, keeps recent rows, and records counts, metrics and audit', async () => {
    await seedLogs(2500, 10);
    await policy('system_logs', { retainDays: 30 });
    const dry = await t.inject({ method: 'POST', url: `${ROOT}/system_logs/run?dryRun=true` });
    expect(dry.statusCode, dry.body).toBe(200);
    expect(dry.json()).toMatchObject({ category: 'system_logs', dryRun: true, eligible: 2500, purged: 0, status: 'dry-run', retainDays: 30 });
    expect(await countLogs(seeded)).toBe(2510);

    const run = await t.inject({ method: 'POST', url: `${ROOT}/system_logs/run` });
    expect(run.statusCode, run.body).toBe(200);
    expect(run.json()).toMatchObject({ dryRun: false, purged: 2500, batches: 3, status: 'complete' });
    expect(await countLogs(seeded)).toBe(10);
    expect((await t.inject({ method: 'GET', url: `${ROOT}/system_logs` })).json()).toMatchObject({ lastRunStatus: 'complete', lastRunPurged: 2500, rowsPurgedTotal: 2500 });
    const metrics = (await t.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/valhalla_retention_purged_rows_total\{[^}]*category="system_logs"[^}]*\} 2500/);
    const audit = await t.app.db.select().from(adminOperations).where(eq(adminOperations.operation, 'retention.purge'));
    expect(audit.at(-1)).toMatchObject({ targetId: 'system_logs', after: expect.objectContaining({ purged: 2500 }) });
  });

  it('stops at the run budget and says partial; the next run goes on', async () => {
    await seedLogs(300, 0, 50);
    const slow = await t.another({ RETENTION_BATCH_SIZE: 50, RETENTION_BATCH_PAUSE_MS: 150, RETENTION_RUN_BUDGET_MS: 100 });
    const first = await t.inject({ method: 'POST', url: `${ROOT}/system_logs/run` }, slow);
    expect(first.json()).toMatchObject({ status: 'partial' });
    expect(first.json().purged).toBeLessThan(300);
    expect(first.json().purged).toBeGreaterThan(0);
    expect((await t.inject({ method: 'GET', url: `${ROOT}/system_logs` })).json().lastRunStatus).toBe('partial');
    const rest = await t.inject({ method: 'POST', url: `${ROOT}/system_logs/run` });
    expect(rest.json().status).toBe('complete');
    expect(first.json().purged + rest.json().purged).toBe(300);
  });

  it('runs the enabled policies in the periodic job, skipping disabled ones', async () => {
    await seedLogs(120, 0);
    await t.inject({ method: 'PATCH', url: `${ROOT}/system_logs`, payload: { enabled: false } });
    await t.app.jobs.runDuePeriodic();
    expect(await countLogs(sql`${seeded} and ${systemLogs.occurredAt} < now() - interval '30 days'`)).toBe(120);

    await t.inject({ method: 'PATCH', url: `${ROOT}/system_logs`, payload: { enabled: true } });
    // A new period: let the schedule row come due again.
    await t.app.db.execute(sql`update job_schedules set next_run_at = now() where name = 'retention:purge'`);
    expect(await t.app.jobs.runDuePeriodic()).toContain('retention:purge');
    expect(await countLogs(sql`${seeded} and ${systemLogs.occurredAt} < now() - interval '30 days'`)).toBe(0);
    const audit = await t.app.db.select().from(adminOperations).where(eq(adminOperations.operation, 'retention.purge'));
    expect(audit.at(-1)).toMatchObject({ actorType: 'system', actorId: 'retention', after: expect.objectContaining({ purged: 120 }) });
  });

  it('answers 409 while a purge of the same category is running', async () => {
    await t.app.database.withAdvisoryLock(lockKey('retention:system_logs'), async () => {
      const res = await t.inject({ method: 'POST', url: `${ROOT}/system_logs/run` });
      expect(res.statusCode).toBe(409);
      // A dry run only counts: it is not held up.
      expect((await t.inject({ method: 'POST', url: `${ROOT}/system_logs/run?dryRun=true` })).statusCode).toBe(200);
    });
  });

  it('purges only finished outbox rows', async () => {
    const row = (status: 'pending' | 'delivered' | 'dead', i: number) => ({
      messageId: `msg_ret_${status}_${i}`,
      eventId: 'evt_ret',
      eventType: 'test.retention',
      payload: {},
      status,
      maxAttempts: 8,
      createdAt: daysAgo(60),
    });
    await t.app.db.insert(notificationOutbox).values([row('pending', 1), row('delivered', 1), row('dead', 1), row('delivered', 2)]);
    await policy('notification_outbox', { retainDays: 30 });
    expect((await t.inject({ method: 'POST', url: `${ROOT}/notification_outbox/run?dryRun=true` })).json().eligible).toBe(3);
    expect((await t.inject({ method: 'POST', url: `${ROOT}/notification_outbox/run` })).json().purged).toBe(3);
    const left = await t.app.db.select().from(notificationOutbox).where(eq(notificationOutbox.eventId, 'evt_ret'));
    expect(left.map((r) => r.status)).toEqual(['pending']);
  });
});

describe('export jobs', () => {
  it('purges old exports without a file, never one whose file can still be downloaded', async () => {
    const row = (status: 'succeeded' | 'failed' | 'cancelled', fileDeleted: boolean) => ({
      dataset: 'system_logs',
      format: 'ndjson' as const,
      filters: {},
      status,
      requestedBy: 'test',
      createdAt: daysAgo(200),
      fileDeletedAt: fileDeleted ? daysAgo(199) : null,
    });
    await t.app.db.insert(exportJobs).values([row('succeeded', false), row('succeeded', true), row('failed', false), row('cancelled', false)]);
    await policy('export_jobs', { retainDays: 90 });
    expect((await t.inject({ method: 'POST', url: `${ROOT}/export_jobs/run` })).json().purged).toBe(3);
    const left = await t.app.db.select().from(exportJobs);
    expect(left.map((r) => [r.status, r.fileDeletedAt])).toEqual([['succeeded', null]]);
  });
});

describe('the audit trail', () => {
  /**
   * Makes the first `n` entries `days` old. Their hashes cover the time, so the whole chain is
   * rewritten as the writer would have written it then: every entry still links and verifies.
   */
  async function backdateOldest(n: number, days: number) {
    const rows = await t.app.db.select().from(adminOperations).orderBy(asc(adminOperations.id));
    let prevHash = GENESIS_HASH;
    for (const [i, row] of rows.entries()) {
      const occurredAt = i < n ? new Date(Date.now() - days * DAY - (n - i) * 1000).toISOString() : row.occurredAt;
      const hash = chainHash({ ...row, occurredAt, prevHash });
      await t.app.db.update(adminOperations).set({ occurredAt, prevHash, hash }).where(eq(adminOperations.id, row.id));
      prevHash = hash;
    }
  }
  const verify = async () => (await t.inject({ method: 'GET', url: '/system/admin/operations/verify' })).json();

  it('purges the oldest entries past the floor and the chain still verifies from the oldest kept entry', async () => {
    // No purge has anchored the chain yet in this file's database.
    expect(await t.app.db.select().from(auditChainAnchor)).toHaveLength(0);
    const total = await t.app.db.$count(adminOperations);
    expect(total).toBeGreaterThan(12);
    await backdateOldest(10, 400);
    expect(await verify()).toMatchObject({ ok: true, checked: total });

    await policy('admin_operations', { retainDays: 365 });
    const dry = await t.inject({ method: 'POST', url: `${ROOT}/admin_operations/run?dryRun=true` });
    expect(dry.json().eligible).toBe(10);
    const run = await t.inject({ method: 'POST', url: `${ROOT}/admin_operations/run` });
    expect(run.json()).toMatchObject({ purged: 10, status: 'complete' });

    const kept = await t.app.db.select().from(adminOperations).orderBy(asc(adminOperations.id));
    const [anchor] = await t.app.db.select().from(auditChainAnchor);
    expect(kept[0]!.prevHash).toBe(anchor!.throughHash);
    expect(kept[0]!.id).toBeGreaterThan(anchor!.throughId);
    expect(kept[0]!.prevHash).not.toBe(GENESIS_HASH);
    // The purge's own entries (policy create, the run) were appended and are in the chain.
    expect(await verify()).toMatchObject({ ok: true, checked: kept.length });
  });

  it('still detects a kept entry deleted after the purge', async () => {
    const [oldest] = await t.app.db.select().from(adminOperations).orderBy(asc(adminOperations.id)).limit(1);
    await t.app.db.delete(adminOperations).where(eq(adminOperations.id, oldest!.id));
    const v = await verify();
    expect(v).toMatchObject({ ok: false, reason: 'link-mismatch' });
    expect(v.firstBrokenId).toBeGreaterThan(oldest!.id);
    // Put it back so the rest of the file works on an intact chain.
    await t.app.db.execute(sql`insert into admin_operations overriding system value select * from json_populate_record(null::admin_operations, ${JSON.stringify({ ...toSnake(oldest!) })}::json)`);
    expect(await verify()).toMatchObject({ ok: true });
  });

  it('never purges the newest entry, which the next write links to', async () => {
    const count = await t.app.db.$count(adminOperations);
    await backdateOldestAfterAnchor(count, 500);
    const run = await t.inject({ method: 'POST', url: `${ROOT}/admin_operations/run` });
    expect(run.json().purged).toBe(count - 1);
    // The kept entry, then the run's own audit entry linked to it.
    expect(await verify()).toMatchObject({ ok: true, checked: 2 });
  });

  /** Like backdateOldest, for a chain that starts at the anchor. */
  async function backdateOldestAfterAnchor(n: number, days: number) {
    const [anchor] = await t.app.db.select().from(auditChainAnchor);
    const rows = await t.app.db.select().from(adminOperations).orderBy(asc(adminOperations.id));
    let prevHash = anchor?.throughHash ?? GENESIS_HASH;
    for (const [i, row] of rows.entries()) {
      const occurredAt = i < n ? new Date(Date.now() - days * DAY - (n - i) * 1000).toISOString() : row.occurredAt;
      const hash = chainHash({ ...row, occurredAt, prevHash });
      await t.app.db.update(adminOperations).set({ occurredAt, prevHash, hash }).where(eq(adminOperations.id, row.id));
      prevHash = hash;
    }
  }
});

function toSnake(row: typeof adminOperations.$inferSelect): Record<string, unknown> {
  return {
    id: row.id,
    occurred_at: row.occurredAt,
    actor_type: row.actorType,
    actor_id: row.actorId,
    key_id: row.keyId,
    operation: row.operation,
    target_type: row.targetType,
    target_id: row.targetId,
    reason: row.reason,
    before: row.before,
    after: row.after,
    result: row.result,
    correlation_id: row.correlationId,
    prev_hash: row.prevHash,
    hash: row.hash,
    chain_version: row.chainVersion,
  };
}

describe('the audit floor at purge time', () => {
  it('purges the audit trail at the floor in force, whatever the stored policy says (max of the two)', async () => {
    const low = await t.another({ AUDIT_RETENTION_FLOOR_DAYS: 30 });
    await t.inject({ method: 'DELETE', url: `${ROOT}/admin_operations` }); // an earlier test's policy
    const set = await t.inject({ method: 'POST', url: ROOT, payload: { category: 'admin_operations', retainDays: 30 } }, low);
    expect(set.statusCode, set.body).toBe(201);
    // This instance has the default floor (365): its runs never cut below it.
    const dry = await t.inject({ method: 'POST', url: `${ROOT}/admin_operations/run?dryRun=true` });
    expect(dry.statusCode, dry.body).toBe(200);
    expect(dry.json().retainDays).toBe(365);
    expect(Date.now() - Date.parse(dry.json().cutoff)).toBeGreaterThanOrEqual(365 * DAY - 60_000);
    const run = await t.inject({ method: 'POST', url: `${ROOT}/admin_operations/run` });
    expect(run.statusCode, run.body).toBe(200);
    expect(run.json().retainDays).toBe(365);
    // The instance whose floor is 30 purges at the stored 30 days.
    const lowDry = await t.inject({ method: 'POST', url: `${ROOT}/admin_operations/run?dryRun=true` }, low);
    expect(lowDry.json().retainDays).toBe(30);
    await t.inject({ method: 'DELETE', url: `${ROOT}/admin_operations` });
  });
});
