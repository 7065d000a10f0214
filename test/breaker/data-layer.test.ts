/**
 * Breaker findings on the data layer (notifications, exports, imports), written by an outside
 * tester from the README only. Each `it.fails` pins a defect: it asserts the expected behaviour,
 * fails today, and turns red (as "expected to fail but passed") once the defect is fixed.
 * Reproductions against real processes are in `.scratch/FINDINGS.md`.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestApp, type TestApp } from '../helpers/app.js';
import { systemLogs } from '../../plugins/system-log/table.js';
import { createExporter, type OpenSink } from '../../plugins/exports/jobs.js';
import { jobQueue } from '../../src/jobs/table.js';
import { and, eq, sql } from 'drizzle-orm';

const ROOT = '/system/exports';
const DAY = 86_400_000;

let t: TestApp;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valhalla-breaker-'));
  t = await createTestApp({ EXPORT_DIR: dir, EXPORT_BATCH_SIZE: 5 });
  await t.app.db.insert(systemLogs).values(
    Array.from({ length: 30 }, (_, i) => ({ level: 'info' as const, source: 'breaker', event: 'breaker.seed', message: `row ${i}`, instanceId: 'test', data: { i } })),
  );
});
afterAll(async () => t?.close());

const get = async (id: number) => (await t.inject({ method: 'GET', url: `${ROOT}/${id}` })).json();
const filesOf = (id: number) => readdirSync(dir).filter((f) => f.startsWith(`export-${id}.`));

describe('breaker: exports', () => {
  // Two instances with their own EXPORT_DIR (the README's "Several instances" section says nothing
  // about sharing it): the instance that did not write the file answers 500 (ENOENT from
  // createReadStream), with the ETag and Content-Disposition of a file it does not have.
  it.fails('a download on an instance that does not hold the file is not a 500', async () => {
    const otherDir = mkdtempSync(join(tmpdir(), 'valhalla-breaker-other-'));
    const other = await t.another({ EXPORT_DIR: otherDir });
    const created = await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'system_logs' } });
    expect(created.statusCode, created.body).toBe(201);
    await t.app.jobs.runDueQueued(10);
    expect((await get(created.json().id)).status).toBe('succeeded');
    const res = await t.inject({ method: 'GET', url: `${ROOT}/${created.json().id}/download` }, other);
    expect(res.statusCode, res.body).not.toBe(500);
    expect(res.statusCode).toBeLessThan(500);
  });

  // SIGKILL (or OOM kill, power loss) mid-export: the `.part` file stays, the export reads
  // `running` for the job's 1 h lease, and cancelling it answers 200 `cancelled` while nothing ever
  // removes the partial file (the job that later picks the row up sees `cancelled` and returns).
  // Simulated here with an exporter whose second write never returns (the process froze / died).
  it.fails('cancelling an export whose runner died leaves no partial file behind', async () => {
    const created = await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'system_logs' } });
    const id = created.json().id as number;
    let writes = 0;
    let release!: (err: Error) => void;
    const frozen = new Promise<never>((_, reject) => (release = reject));
    const openSink: OpenSink = async (path) => {
      const handle = await open(path, 'wx');
      return {
        write: async (data) => (++writes > 1 ? frozen : handle.write(data)),
        close: () => handle.close(),
      };
    };
    const dying = createExporter({ service: t.app.exports.service, db: t.app.db, datasets: t.app.retention, snapshots: t.app.snapshots, dir, ttlMs: DAY, batchSize: 5, log: t.app.log, openSink });
    const running = dying.run(id).catch(() => {});
    await expect.poll(() => filesOf(id), { timeout: 5_000 }).toEqual([`export-${id}.ndjson.part`]);
    expect((await get(id)).status).toBe('running');
    // "Restart": the operator cancels the stuck export; the queued job and the expiry job run.
    const cancel = await t.inject({ method: 'POST', url: `${ROOT}/${id}/status`, payload: { status: 'cancelled' } });
    expect(cancel.statusCode, cancel.body).toBe(200);
    await t.app.jobs.runDueQueued(10);
    await t.app.exports.exporter.expire();
    try {
      expect(filesOf(id)).toEqual([]);
    } finally {
      release(new Error('process gone'));
      await running;
    }
  });
});

describe('breaker: export scopes', () => {
  // `GET /system/admin/operations` needs `audit:read` and `GET /system/logs` needs `system:read`
  // (403 for this key), but a key holding only `exports:read` + `exports:write` exports and downloads
  // the whole audit trail, the logs, the error events and the traces.
  it.fails('exporting the audit trail needs the scope that reads it', async () => {
    const { token } = await t.keyWith(['exports:read', 'exports:write']);
    const direct = await t.inject({ method: 'GET', url: '/system/admin/operations', headers: authHeader(token) });
    expect(direct.statusCode).toBe(403);
    const res = await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'admin_operations' }, headers: authHeader(token) });
    expect(res.statusCode, res.body).toBe(403);
  });
});

describe('breaker: exports interrupted by shutdown', () => {
  // Each SIGTERM during an export re-queues the export and fails the job (exporter.run throws), and
  // the failure counts as an attempt (maxAttempts 5). The fifth interruption (five instances of a
  // rolling deploy) makes the job `dead` while the export row stays `queued`: no job will ever run it,
  // and it has no error. Real processes: .scratch/term-export-5x.sh ("after: job=dead|5|5|interrupted
  // by shutdown export=queued|0|"). Here the four earlier interruptions are written into the job row.
  it.fails('the fifth interruption does not leave the export queued forever with no job', async () => {
    await t.app.db.insert(systemLogs).values(
      Array.from({ length: 3000 }, (_, i) => ({ level: 'info' as const, source: 'breaker', event: 'breaker.bulk', message: `bulk ${i}`, instanceId: 'test' })),
    );
    const b = await t.another({ EXPORT_DIR: dir, EXPORT_BATCH_SIZE: 1 });
    const id = (await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'system_logs' } })).json().id as number;
    const ofThisExport = and(eq(jobQueue.name, 'exports:run'), sql`${jobQueue.payload}->>'exportId' = ${String(id)}`);
    await t.app.db.update(jobQueue).set({ attempts: 4 }).where(ofThisExport);
    const pass = b.jobs.runDueQueued(10);
    await expect.poll(async () => (await get(id)).rowsExported, { timeout: 10_000, interval: 5 }).toBeGreaterThan(0);
    await b.jobs.stop(); // what SIGTERM does
    await pass;
    const [job] = await t.app.db.select().from(jobQueue).where(ofThisExport);
    const exp = await get(id);
    expect(`job ${job!.status}, export ${exp.status}`).not.toBe('job dead, export queued');
  });
});

describe('breaker: export formats', () => {
  // README: "NDJSON is one JSON object per row, timestamps in ISO 8601". Every dataset writes
  // `2026-11-29T21:59:33.559Z` except admin_operations (its time column is mapped as a string), which
  // writes PostgreSQL's text form `2026-11-29 21:59:10.513+00` (space, no minutes in the offset).
  it.fails('admin_operations timestamps are ISO 8601 like every other dataset', async () => {
    const created = await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'admin_operations' } });
    expect(created.statusCode, created.body).toBe(201);
    await t.app.jobs.runDueQueued(10);
    const res = await t.inject({ method: 'GET', url: `${ROOT}/${created.json().id}/download` });
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    const first = JSON.parse(res.body.split('\n')[0]!);
    expect(first.occurredAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
  });
});

describe('breaker: imports', () => {
  const doc = (sections: Record<string, unknown[]>) => ({ kind: 'valhalla-snapshot', version: 1, createdAt: new Date().toISOString(), sections });

  // The dry run answers 200 with a plan for a document the real import refuses with 422: a
  // retention below the audit floor, a flag prerequisite cycle (and, with WEBHOOK_ALLOW_PRIVATE
  // off, a channel URL the SSRF guard refuses). A dry run is the operator's preview; it says "ok".
  it.fails('a dry run refuses what the import refuses (audit floor)', async () => {
    const body = doc({ retention_policies: [{ category: 'admin_operations', retainDays: 1, enabled: true }] });
    const real = await t.inject({ method: 'POST', url: '/system/imports', payload: body });
    expect(real.statusCode, real.body).toBe(422);
    const dry = await t.inject({ method: 'POST', url: '/system/imports?dryRun=true', payload: body });
    expect(dry.statusCode, dry.body).toBe(422);
  });

  it.fails('a dry run refuses what the import refuses (prerequisite cycle)', async () => {
    const body = doc({
      feature_flags: [
        { key: 'brk-a', type: 'release', enabled: true, prerequisites: [{ flagKey: 'brk-b' }] },
        { key: 'brk-b', type: 'release', enabled: true, prerequisites: [{ flagKey: 'brk-a' }] },
      ],
    });
    const real = await t.inject({ method: 'POST', url: '/system/imports', payload: body });
    expect(real.statusCode, real.body).toBe(422);
    const dry = await t.inject({ method: 'POST', url: '/system/imports?dryRun=true', payload: body });
    expect(dry.statusCode, dry.body).toBe(422);
  });
});

describe('breaker: retention', () => {
  // The floor is checked only when a policy is written. A policy written while the floor was lower
  // (AUDIT_RETENTION_FLOOR_DAYS=30 on some instance, or for a while) keeps purging the audit trail
  // at that age after the floor is back at 365: the purge uses the stored retainDays as it is.
  it.fails('the audit purge never cuts below the floor in force', async () => {
    const low = await t.another({ AUDIT_RETENTION_FLOOR_DAYS: 30 });
    const set = await t.inject({ method: 'POST', url: '/system/retention', payload: { category: 'admin_operations', retainDays: 30 } }, low);
    expect(set.statusCode, set.body).toBe(201);
    // This instance has the default floor (365).
    const dry = await t.inject({ method: 'POST', url: '/system/retention/admin_operations/run?dryRun=true' });
    expect(dry.statusCode, dry.body).toBe(200);
    expect(Date.now() - Date.parse(dry.json().cutoff), dry.body).toBeGreaterThanOrEqual(365 * DAY - 60_000);
  });
});

// The notification payloads that answered 500 (deep nesting, \u0000, a lone surrogate) are pinned
// in test/kernel/storable-text.test.ts.
