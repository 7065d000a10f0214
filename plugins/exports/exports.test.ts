import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, asc, eq, getTableColumns, gte, lt, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { heapGrowthBound } from '../../src/heap-growth.js';
import { authHeader, createTestApp, type TestApp } from '../../test/helpers/app.js';
import { jobQueue } from '../../src/jobs/table.js';
import { systemLogs } from '../system-log/table.js';
import { csvCell } from './formats.js';
import { createExporter, EXPORT_LEASE_MS, type OpenSink } from './jobs.js';
import { exportJobs } from './table.js';

const ROOT = '/system/exports';
const DAY = 86_400_000;

let t: TestApp;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valhalla-exports-'));
  t = await createTestApp({ EXPORT_DIR: dir, EXPORT_BATCH_SIZE: 7 });
  // 40 rows over four days, with cells a spreadsheet would evaluate and cells CSV must quote.
  const tricky = ['=1+2', '+cmd', '-2+3', '@SUM(A1)', 'plain', 'comma, here', 'quote "x"', 'two\r\nlines', '\tTAB'];
  await t.app.db.insert(systemLogs).values(
    Array.from({ length: 40 }, (_, i) => ({
      occurredAt: new Date(Date.now() - (i % 4) * DAY - 1000),
      level: 'info' as const,
      source: 'export-test',
      event: 'export.seed',
      message: tricky[i % tricky.length]!,
      instanceId: 'test',
      data: { i },
    })),
  );
});
afterAll(async () => t?.close());

async function startExport(body: Record<string, unknown>) {
  const res = await t.inject({ method: 'POST', url: ROOT, payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ id: number; status: string }>();
}
const runJobs = () => t.app.jobs.runDueQueued(10);
const exporterWith = (openSink: OpenSink) =>
  createExporter({ service: t.app.exports.service, db: t.app.db, datasets: t.app.retention, snapshots: t.app.snapshots, dir, ttlMs: DAY, batchSize: 5, log: t.app.log, openSink });
const get = async (id: number) => (await t.inject({ method: 'GET', url: `${ROOT}/${id}` })).json();

/** RFC 4180, read independently of the writer: quoted fields may hold commas, quotes ("") and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') row.push(cell), (cell = '');
    else if (ch === '\r' && text[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += ch;
  }
  return rows;
}

describe('exports', () => {
  it('lists the datasets', async () => {
    const res = await t.inject({ method: 'GET', url: `${ROOT}/datasets` });
    expect(res.json().items.map((d: { name: string }) => d.name)).toEqual(expect.arrayContaining(['system_logs', 'admin_operations', 'trace_spans', 'smoke_test_results', 'error_events']));
  });

  it('exports the filtered rows as NDJSON, in batches, with size, SHA-256, expiry; the download streams exactly that file', async () => {
    const since = new Date(Date.now() - 2 * DAY - 60_000).toISOString();
    const until = new Date(Date.now() - 500).toISOString();
    const created = await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'system_logs', since, until } });
    expect(created.statusCode, created.body).toBe(201);
    const job = created.json();
    expect(created.headers.location).toBe(`${ROOT}/${job.id}`);
    expect(job).toMatchObject({ status: 'queued', format: 'ndjson', rowsExported: 0, downloadUrl: null, filters: { since, until } });
    const audit = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'export.create'), eq(adminOperations.targetId, String(job.id))));
    expect(audit).toHaveLength(1);

    expect(await runJobs()).toBeGreaterThanOrEqual(1);
    const done = await get(job.id);
    const expected = await t.app.db.select().from(systemLogs).where(and(gte(systemLogs.occurredAt, new Date(since)), lt(systemLogs.occurredAt, new Date(until)))).orderBy(asc(systemLogs.id));
    expect(expected.length).toBeGreaterThan(7); // more than one batch
    expect(done).toMatchObject({ status: 'succeeded', rowsExported: expected.length, error: null, expired: false, downloadUrl: `${ROOT}/${job.id}/download` });
    expect(Date.parse(done.expiresAt) - Date.now()).toBeGreaterThan(23 * 3_600_000);

    const file = await t.inject({ method: 'GET', url: done.downloadUrl });
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-type']).toBe('application/x-ndjson');
    expect(Number(file.headers['content-length'])).toBe(done.sizeBytes);
    expect(file.rawPayload.length).toBe(done.sizeBytes);
    expect(createHash('sha256').update(file.rawPayload).digest('hex')).toBe(done.sha256);
    expect(file.headers.etag).toBe(`"${done.sha256}"`);
    const lines = file.body.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual(expected.map((r) => r.id));
    expect(lines[0]).toEqual({ ...expected[0], occurredAt: expected[0]!.occurredAt.toISOString() });

    const again = await t.inject({ method: 'GET', url: done.downloadUrl, headers: { 'if-none-match': file.headers.etag as string } });
    expect(again.statusCode).toBe(304);
    expect(readdirSync(dir).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('filters a dataset whose time column is stored as text mode (the audit trail)', async () => {
    const since = new Date(Date.now() - 3_600_000).toISOString();
    const job = await startExport({ dataset: 'admin_operations', since });
    await runJobs();
    const done = await get(job.id);
    const expected = await t.app.db.select().from(adminOperations).where(gte(adminOperations.occurredAt, since));
    expect(done, done.error).toMatchObject({ status: 'succeeded' });
    // The export's own audit entry is written when it is created, so it is in the range.
    expect(done.rowsExported).toBe(expected.length);
    const lines = (await t.inject({ method: 'GET', url: done.downloadUrl })).body.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual(expected.map((r) => r.id).sort((a, b) => a - b));
    expect(lines[0]).toHaveProperty('hash');
  });

  it('announces a finished export to the channels subscribed to export.finished', async () => {
    process.env.NOTIFY_SECRET_EXPORT_HOOK = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;
    const channel = await t.inject({ method: 'POST', url: '/system/notify/channels', payload: { name: 'exports-hook', type: 'webhook', events: ['export.*'], config: { url: 'https://hooks.example.com/exports', secretEnvs: ['NOTIFY_SECRET_EXPORT_HOOK'] } } });
    expect(channel.statusCode, channel.body).toBe(201);
    const job = await startExport({ dataset: 'system_logs', since: new Date(Date.now() - 60_000).toISOString() });
    await runJobs();
    const outbox = (await t.inject({ method: 'GET', url: `/system/notify?channelId=${channel.json().id}&eventType=export.finished` })).json().items;
    expect(outbox).toHaveLength(1);
    expect(outbox[0].payload).toMatchObject({ exportId: job.id, dataset: 'system_logs', status: 'succeeded' });
    await t.inject({ method: 'DELETE', url: `/system/notify/channels/${channel.json().id}` });
  });

  it('writes RFC 4180 CSV and neutralises cells a spreadsheet would evaluate', async () => {
    const job = await startExport({ dataset: 'system_logs', format: 'csv' });
    await runJobs();
    const done = await get(job.id);
    expect(done.status).toBe('succeeded');
    const file = await t.inject({ method: 'GET', url: done.downloadUrl });
    expect(file.headers['content-type']).toBe('text/csv; charset=utf-8');
    const rows = parseCsv(file.body);
    const header = rows[0]!;
    expect(header).toEqual(expect.arrayContaining(['id', 'occurredAt', 'message', 'data']));
    expect(rows).toHaveLength(1 + done.rowsExported);
    // Only the seeded rows: the kernel's own significant events may be logged meanwhile.
    const messages = new Set(rows.slice(1).filter((r) => r[header.indexOf('event')] === 'export.seed').map((r) => r[header.indexOf('message')]));
    expect([...messages].sort()).toEqual(["'+cmd", "'-2+3", "'=1+2", "'@SUM(A1)", "'\tTAB", 'comma, here', 'plain', 'quote "x"', 'two\r\nlines'].sort());
    const seededRow = rows.slice(1).find((r) => r[header.indexOf('event')] === 'export.seed')!;
    expect(seededRow[header.indexOf('data')]).toMatch(/^\{"i":\d+\}$/);
    // Numbers are not text: a negative number stays a number.
    expect(csvCell(-5)).toBe('-5');
    expect(csvCell('-5')).toBe("'-5");
  });

  it('answers 400, 404, 409 and 422 where it should', async () => {
    for (const payload of [{ dataset: 'system_logs', extra: 1 }, { dataset: 'system_logs', format: 'xlsx' }, { dataset: 'Bad Name' }, { dataset: 'system_logs', since: 'yesterday' }, {}]) {
      expect((await t.inject({ method: 'POST', url: ROOT, payload })).statusCode, JSON.stringify(payload)).toBe(400);
    }
    const range = await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'system_logs', since: '2030-01-02T00:00:00Z', until: '2030-01-01T00:00:00Z' } });
    expect(range.statusCode).toBe(400);
    const unknown = await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'no_such_set' } });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json().detail).toContain('system_logs');
    expect((await t.inject({ method: 'GET', url: `${ROOT}/999999` })).statusCode).toBe(404);
    expect((await t.inject({ method: 'GET', url: `${ROOT}/999999/download` })).statusCode).toBe(404);
    expect((await t.inject({ method: 'POST', url: `${ROOT}/999999/status`, payload: { status: 'cancelled' } })).statusCode).toBe(404);
    expect((await t.inject({ method: 'GET', url: `${ROOT}/x` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${ROOT}?cursor=@@` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${ROOT}?status=done` })).statusCode).toBe(400);

    const queued = await startExport({ dataset: 'system_logs' });
    expect((await t.inject({ method: 'POST', url: `${ROOT}/${queued.id}/status`, payload: { status: 'succeeded' } })).statusCode).toBe(400);
    const early = await t.inject({ method: 'GET', url: `${ROOT}/${queued.id}/download` });
    expect(early.statusCode).toBe(409);
    await runJobs();
    const late = await t.inject({ method: 'POST', url: `${ROOT}/${queued.id}/status`, payload: { status: 'cancelled' } });
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({ currentStatus: 'succeeded' });
    const listed = await t.inject({ method: 'GET', url: `${ROOT}?status=succeeded&dataset=system_logs&limit=1` });
    expect(listed.json().items).toHaveLength(1);
    expect(listed.json().nextCursor).not.toBeNull();
  });

  it('cancels a queued export: the job then does nothing', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    const res = await t.inject({ method: 'POST', url: `${ROOT}/${job.id}/status`, payload: { status: 'cancelled' } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().status).toBe('cancelled');
    await runJobs();
    expect((await get(job.id)).status).toBe('cancelled');
    expect(readdirSync(dir).filter((f) => f.startsWith(`export-${job.id}.`))).toEqual([]);
    expect((await t.inject({ method: 'POST', url: `${ROOT}/${job.id}/status`, payload: { status: 'cancelled' } })).statusCode).toBe(409);
  });

  /** An exporter on the same database whose file writes go through `openSink`. */

  it('streams: never more than one page of rows in hand, and no next page is read before the file took the last one', async () => {
    // A fixed upper bound, and every entry queued before it written: the rows the export covers
    // cannot change while it runs (the instance keeps logging its own requests meanwhile).
    const until = new Date();
    await t.app.batchWriters.flushAll();
    const job = await startExport({ dataset: 'system_logs', until: until.toISOString() });
    const total = (await t.app.db.select({ id: systemLogs.id }).from(systemLogs).where(lt(systemLogs.occurredAt, until))).length;
    expect(total).toBeGreaterThan(10);
    // The exporter's own reads, counted on the real database handle (other work of the instance is not).
    let pageReads = 0;
    const db = new Proxy(t.app.db, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (prop === 'select' && typeof value === 'function') return (...args: unknown[]) => (pageReads++, Reflect.apply(value, target, args));
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const writes: { lines: number; readsAtStart: number; readsAtEnd: number }[] = [];
    const exporter = createExporter({
      service: t.app.exports.service, db, datasets: t.app.retention, snapshots: t.app.snapshots, dir, ttlMs: DAY, batchSize: 5, log: t.app.log,
      openSink: async (path) => {
        const handle = await open(path, 'wx');
        return {
          write: async (data) => {
            const readsAtStart = pageReads;
            // A slow disk: the write is held a few turns of the event loop; a prefetching exporter would read meanwhile.
            for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
            await handle.write(data);
            writes.push({ lines: data.toString('utf8').split('\n').length - 1, readsAtStart, readsAtEnd: pageReads });
          },
          close: () => handle.close(),
        };
      },
    });
    await exporter.run(job.id);
    expect((await get(job.id)).status).toBe('succeeded');
    // batchSize 5: every write carries at most one page, and every page gets a write of its own.
    expect(writes.reduce((n, w) => n + w.lines, 0)).toBe(total);
    expect(Math.max(...writes.map((w) => w.lines))).toBeLessThanOrEqual(5);
    expect(writes.length).toBeGreaterThanOrEqual(Math.ceil(total / 5));
    expect(pageReads).toBeGreaterThanOrEqual(Math.ceil(total / 5));
    // Backpressure: nothing was read from the database while a write was pending.
    for (const w of writes) expect(w.readsAtEnd).toBe(w.readsAtStart);
  });

  it('bounds V8 heap growth while it streams, and releases the bound when it ends, failed ones too', async () => {
    const seen: number[] = [];
    const bounded = (fail: boolean) =>
      createExporter({
        service: t.app.exports.service, db: t.app.db, datasets: t.app.retention, snapshots: t.app.snapshots, dir, ttlMs: DAY, batchSize: 5, heapGrowingPercent: 70, log: t.app.log,
        openSink: async (path) => {
          const handle = await open(path, 'wx');
          return {
            write: async (data) => {
              seen.push(heapGrowthBound());
              if (fail) throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
              await handle.write(data);
            },
            close: () => handle.close(),
          };
        },
      });
    const ok = await startExport({ dataset: 'system_logs' });
    await bounded(false).run(ok.id);
    expect((await get(ok.id)).status).toBe('succeeded');
    const failing = await startExport({ dataset: 'system_logs' });
    await bounded(true).run(failing.id);
    expect((await get(failing.id)).status).toBe('failed');
    expect(seen.length).toBeGreaterThan(1);
    expect(new Set(seen)).toEqual(new Set([70]));
    expect(heapGrowthBound()).toBe(0);
  });

  it('stops a running export when it is cancelled and leaves no partial file', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    const exporter = exporterWith(async (path) => {
      const handle = await open(path, 'wx');
      let writes = 0;
      return {
        write: async (data) => {
          await handle.write(data);
          // The operator cancels while the first batch is being written.
          if (++writes === 1) await t.inject({ method: 'POST', url: `${ROOT}/${job.id}/status`, payload: { status: 'cancelled' } });
        },
        close: () => handle.close(),
      };
    });
    await exporter.run(job.id);
    const after = await get(job.id);
    expect(after.status).toBe('cancelled');
    expect(after.rowsExported).toBe(0);
    expect(readdirSync(dir).filter((f) => f.startsWith(`export-${job.id}.`))).toEqual([]);
  });

  it('queues an export interrupted by shutdown again, with no partial file, and hands its job back', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    const stop = new AbortController();
    const exporter = exporterWith(async (path) => {
      const handle = await open(path, 'wx');
      return {
        write: async (data) => {
          await handle.write(data);
          stop.abort(); // SIGTERM arrives while the first batch is written
        },
        close: () => handle.close(),
      };
    });
    await expect(exporter.run(job.id, stop.signal)).rejects.toThrow('interrupted by shutdown');
    expect(await get(job.id)).toMatchObject({ status: 'queued', rowsExported: 0, startedAt: null });
    expect(readdirSync(dir).filter((f) => f.startsWith(`export-${job.id}.`))).toEqual([]);
    await runJobs();
    expect((await get(job.id)).status).toBe('succeeded');
  });

  it('fails with a clear error when the disk fills up, and removes the partial file', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    const exporter = exporterWith(async (path) => {
      const handle = await open(path, 'wx');
      let writes = 0;
      return {
        write: async (data) => {
          if (++writes === 3) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return handle.write(data);
        },
        close: () => handle.close(),
      };
    });
    await exporter.run(job.id);
    const after = await get(job.id);
    expect(after).toMatchObject({ status: 'failed', downloadUrl: null, sha256: null });
    expect(after.error).toContain('disk full');
    expect(readdirSync(dir).filter((f) => f.startsWith(`export-${job.id}.`))).toEqual([]);
  });

  it('fails with a clear error when EXPORT_DIR cannot be written', async () => {
    const file = join(dir, 'not-a-directory');
    writeFileSync(file, 'x');
    const other = await t.another({ EXPORT_DIR: join(file, 'exports') });
    const res = await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'system_logs' } }, other);
    await other.jobs.runDueQueued(10);
    const after = (await t.inject({ method: 'GET', url: `${ROOT}/${res.json().id}` }, other)).json();
    expect(after.status).toBe('failed');
    expect(after.error).toMatch(/EXPORT_DIR .* is not writable \(ENOTDIR\)/);
  });

  it('deletes expired files in the expiry job; their download is then a 404', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    await runJobs();
    expect(readdirSync(dir)).toContain(`export-${job.id}.ndjson`);
    await t.app.db.update(exportJobs).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(exportJobs.id, job.id));
    expect(await t.app.exports.exporter.expire()).toBeGreaterThanOrEqual(1);
    expect(readdirSync(dir)).not.toContain(`export-${job.id}.ndjson`);
    expect(await get(job.id)).toMatchObject({ status: 'succeeded', expired: true, downloadUrl: null });
    const res = await t.inject({ method: 'GET', url: `${ROOT}/${job.id}/download` });
    expect(res.statusCode).toBe(404);
    expect(res.json().detail).toContain('expired');
  });
});

describe('snapshot and import', () => {
  process.env.NOTIFY_SECRET_SNAPSHOT_HOOK = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
  const post = (url: string, payload: unknown) => t.inject({ method: 'POST', url, payload: payload as Record<string, unknown> });

  async function takeSnapshot() {
    const job = await startExport({ dataset: 'snapshot' });
    await runJobs();
    const done = await get(job.id);
    expect(done, done.error).toMatchObject({ status: 'succeeded', format: 'json' });
    const file = await t.inject({ method: 'GET', url: done.downloadUrl });
    expect(file.headers['content-type']).toBe('application/json');
    return file.json();
  }

  it('exports the control-plane state as one document and restores it: dry run shows the diff, apply is atomic and audited', async () => {
    expect((await post('/system/flags', { key: 'snap.base', enabled: true, rolloutPercentage: 100 })).statusCode).toBe(201);
    expect((await post('/system/flags', { key: 'snap.child', enabled: true, rolloutPercentage: 100, prerequisites: [{ flagKey: 'snap.base' }] })).statusCode).toBe(201);
    expect((await post('/system/notify/channels', { name: 'snap-hook', type: 'webhook', events: ['smoke.failed'], config: { url: 'https://hooks.example.com/x', secretEnvs: ['NOTIFY_SECRET_SNAPSHOT_HOOK'] } })).statusCode).toBe(201);
    expect((await post('/system/retention', { category: 'trace_spans', retainDays: 5 })).statusCode).toBe(201);
    expect((await post('/system/rate-limits', { scope: 'ip', match: '203.0.113.7', max: 50, windowSeconds: 60 })).statusCode).toBe(201);
    expect((await t.inject({ method: 'PUT', url: '/system/config/snap.page_size?environment=production', payload: { value: 25, description: 'rows per page' } })).statusCode).toBeLessThan(300);

    const doc = await takeSnapshot();
    expect(doc.sections.config).toEqual([{ key: 'snap.page_size', environment: 'production', value: 25, type: 'number', description: 'rows per page' }]);
    expect(doc.sections.rate_limits).toEqual([{ scope: 'ip', match: '203.0.113.7', route: null, max: 50, windowSeconds: 60, enabled: true, description: '' }]);
    expect(doc).toMatchObject({ kind: 'valhalla-snapshot', version: 1 });
    expect(doc.sections.feature_flags.map((f: { key: string }) => f.key)).toEqual(expect.arrayContaining(['snap.base', 'snap.child']));
    expect(doc.sections.notification_channels).toEqual([{ name: 'snap-hook', type: 'webhook', events: ['smoke.failed'], enabled: true, config: { url: 'https://hooks.example.com/x', secretEnvs: ['NOTIFY_SECRET_SNAPSHOT_HOOK'] } }]);
    expect(JSON.stringify(doc)).not.toContain(process.env.NOTIFY_SECRET_SNAPSHOT_HOOK!.slice(6));
    expect(doc.sections.retention_policies).toEqual([{ category: 'trace_spans', retainDays: 5, enabled: true }]);

    // The state drifts: a flag deleted, another added, the channel and the policy changed.
    expect((await t.inject({ method: 'DELETE', url: '/system/flags/snap.child' })).statusCode).toBe(204);
    expect((await post('/system/flags', { key: 'snap.extra' })).statusCode).toBe(201);
    const channelId = (await t.inject({ method: 'GET', url: '/system/notify/channels' })).json().items.find((c: { name: string }) => c.name === 'snap-hook').id;
    await t.inject({ method: 'PATCH', url: `/system/notify/channels/${channelId}`, payload: { events: ['*'] } });
    await t.inject({ method: 'PATCH', url: '/system/retention/trace_spans', payload: { retainDays: 9 } });
    await t.inject({ method: 'PUT', url: '/system/config/snap.page_size?environment=production', payload: { value: 100 } });
    await t.inject({ method: 'PUT', url: '/system/config/snap.extra', payload: { value: 'x' } });
    const ruleId = (await t.inject({ method: 'GET', url: '/system/rate-limits' })).json().items[0].id;
    await t.inject({ method: 'PATCH', url: `/system/rate-limits/${ruleId}`, payload: { max: 5000 } });
    expect((await post('/system/rate-limits', { scope: 'ip', match: '198.51.100.1', max: 1, windowSeconds: 1 })).statusCode).toBe(201);

    const dry = await post('/system/imports?dryRun=true', doc);
    expect(dry.statusCode, dry.body).toBe(200);
    const report = (name: string) => dry.json().sections.find((x: { name: string }) => x.name === name);
    expect(report('feature_flags')).toMatchObject({ create: ['snap.child'], update: [], remove: ['snap.extra'] });
    expect(report('notification_channels')).toMatchObject({ create: [], update: ['snap-hook'], remove: [], unchanged: 0 });
    expect(report('retention_policies')).toMatchObject({ update: ['trace_spans'] });
    expect(report('config')).toMatchObject({ create: [], update: ['production/snap.page_size'], remove: ['default/snap.extra'] });
    expect(report('rate_limits')).toMatchObject({ create: [], update: ['ip|203.0.113.7|'], remove: ['ip|198.51.100.1|'] });
    expect((await t.inject({ method: 'GET', url: '/system/flags/snap.extra' })).statusCode).toBe(200);

    const applied = await post('/system/imports', doc);
    expect(applied.statusCode, applied.body).toBe(200);
    expect(applied.json()).toEqual({ ...dry.json(), dryRun: false });
    expect((await t.inject({ method: 'GET', url: '/system/flags/snap.extra' })).statusCode).toBe(404);
    expect((await t.inject({ method: 'GET', url: '/system/flags/snap.child' })).json()).toMatchObject({ prerequisites: [{ flagKey: 'snap.base' }] });
    expect((await t.inject({ method: 'GET', url: '/system/retention/trace_spans' })).json().retainDays).toBe(5);
    expect((await t.inject({ method: 'GET', url: '/system/config/snap.page_size?environment=production' })).json()).toMatchObject({ value: 25, updatedBy: expect.stringMatching(/^client:/) });
    expect((await t.inject({ method: 'GET', url: '/system/config/snap.extra' })).statusCode).toBe(404);
    expect((await t.inject({ method: 'GET', url: '/system/rate-limits' })).json().items.map((r: { match: string; max: number }) => [r.match, r.max])).toEqual([['203.0.113.7', 50]]);
    // Evaluation (memory) follows at once on this instance.
    const evaluated = await t.inject({ method: 'GET', url: '/system/flags/snap.child/evaluate?subject=user-1' });
    expect(evaluated.statusCode, evaluated.body).toBe(200);
    expect(evaluated.json().value).toBe(true);
    const again = await post('/system/imports?dryRun=true', doc);
    for (const section of again.json().sections) expect(section, section.name).toMatchObject({ create: [], update: [], remove: [] });
    const audit = await t.app.db.select().from(adminOperations).where(eq(adminOperations.operation, 'snapshot.import'));
    expect(audit).toHaveLength(1);
  });

  it('removes flags that require one another in a working order, and brings them back', async () => {
    const doc = await takeSnapshot();
    expect(doc.sections.feature_flags.find((f: { key: string }) => f.key === 'snap.child').prerequisites).toEqual([{ flagKey: 'snap.base' }]);
    const emptied = await post('/system/imports', { ...doc, sections: { feature_flags: [] } });
    expect(emptied.statusCode, emptied.body).toBe(200);
    expect(emptied.json().sections[0].remove).toEqual(expect.arrayContaining(['snap.base', 'snap.child']));
    expect((await t.inject({ method: 'GET', url: '/system/flags' })).json().items).toEqual([]);
    const restored = await post('/system/imports', doc);
    expect(restored.statusCode, restored.body).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/system/flags/snap.child' })).json()).toMatchObject({ prerequisites: [{ flagKey: 'snap.base' }] });
  });

  it('applies all or nothing: one refused item rolls every section back', async () => {
    const doc = await takeSnapshot();
    const broken = {
      ...doc,
      sections: {
        ...doc.sections,
        feature_flags: [...doc.sections.feature_flags, { key: 'snap.never' }],
        retention_policies: [{ category: 'admin_operations', retainDays: 10, enabled: true }],
      },
    };
    const res = await post('/system/imports', broken);
    expect(res.statusCode).toBe(422);
    expect(res.json().detail).toContain('floor');
    expect((await t.inject({ method: 'GET', url: '/system/flags/snap.never' })).statusCode).toBe(404);
    expect((await t.inject({ method: 'GET', url: '/system/retention/trace_spans' })).statusCode).toBe(200);
  });

  it('answers 400 for a malformed document or item, 422 for an unknown section, 403 without admin', async () => {
    const doc = await takeSnapshot();
    expect((await post('/system/imports?dryRun=true', { ...doc, extra: 1 })).statusCode).toBe(400);
    expect((await post('/system/imports?dryRun=true', { ...doc, kind: 'other' })).statusCode).toBe(400);
    const badItem = await post('/system/imports?dryRun=true', { ...doc, sections: { feature_flags: [{ key: 'snap.x', colour: 'red' }] } });
    expect(badItem.statusCode).toBe(400);
    expect(badItem.json().errors[0].pointer).toBe('#/sections/feature_flags/0/colour');
    const dup = await post('/system/imports?dryRun=true', { ...doc, sections: { retention_policies: [{ category: 'trace_spans', retainDays: 5, enabled: true }, { category: 'trace_spans', retainDays: 6, enabled: true }] } });
    expect(dup.statusCode).toBe(400);
    expect((await post('/system/imports?dryRun=true', { ...doc, sections: { blocklist: [] } })).statusCode).toBe(422);
    const writer = await t.keyWith(['exports:write']);
    expect((await t.inject({ method: 'POST', url: '/system/imports?dryRun=true', payload: doc, headers: { authorization: `Bearer ${writer.token}` } })).statusCode).toBe(403);
    expect((await post(ROOT, { dataset: 'snapshot', format: 'csv' })).statusCode).toBe(400);
    expect((await post(ROOT, { dataset: 'system_logs', format: 'json' })).statusCode).toBe(400);
    expect((await post(ROOT, { dataset: 'snapshot', since: '2026-01-01T00:00:00Z' })).statusCode).toBe(400);
  });
});

describe('export scopes: an export is a read of its dataset', () => {
  it('needs the scope that reads the dataset to create and to download an export, 403 naming it', async () => {
    const { token } = await t.keyWith(['exports:read', 'exports:write']);
    expect((await t.inject({ method: 'GET', url: '/system/admin/operations', headers: authHeader(token) })).statusCode).toBe(403);
    for (const [dataset, scope] of [['admin_operations', 'audit:read'], ['system_logs', 'system:read'], ['error_events', 'system:read'], ['trace_spans', 'system:read'], ['job_queue', 'system:read'], ['snapshot', 'admin']] as const) {
      const res = await t.inject({ method: 'POST', url: ROOT, payload: { dataset }, headers: authHeader(token) });
      expect(res.statusCode, `${dataset}: ${res.body}`).toBe(403);
      expect(res.json()).toMatchObject({ type: '/problems/forbidden', requiredScope: scope, dataset });
      expect(res.json().detail).toContain(`'${scope}'`);
    }
    // Its own rows (export_jobs) need only exports:read.
    expect((await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'export_jobs' }, headers: authHeader(token) })).statusCode).toBe(201);
    // With the dataset's scope as well: allowed.
    const logsKey = await t.keyWith(['exports:read', 'exports:write', 'system:read']);
    expect((await t.inject({ method: 'POST', url: ROOT, payload: { dataset: 'system_logs' }, headers: authHeader(logsKey.token) })).statusCode).toBe(201);
    // Downloading the audit trail an admin exported is a read of it too.
    const audit = await startExport({ dataset: 'admin_operations' });
    await runJobs();
    const download = await t.inject({ method: 'GET', url: `${ROOT}/${audit.id}/download`, headers: authHeader(token) });
    expect(download.statusCode, download.body).toBe(403);
    expect(download.headers.etag).toBeUndefined();
    expect(download.json().requiredScope).toBe('audit:read');
  });

  it('lists each dataset with the scope an export of it needs; an undeclared one needs admin', async () => {
    const items: Array<{ name: string; readScope: string }> = (await t.inject({ method: 'GET', url: `${ROOT}/datasets` })).json().items;
    const scopeOf = Object.fromEntries(items.map((d) => [d.name, d.readScope]));
    expect(scopeOf).toMatchObject({ admin_operations: 'audit:read', system_logs: 'system:read', error_events: 'system:read', trace_spans: 'system:read', export_jobs: 'exports:read' });
    for (const d of items) expect(d.readScope, d.name).toBe(t.app.retention.get(d.name)!.readScope ?? 'admin');
  });
});

describe('export files and instances', () => {
  it('answers 404 export-file-missing, without the file headers, on an instance whose EXPORT_DIR lacks the file', async () => {
    const other = await t.another({ EXPORT_DIR: mkdtempSync(join(tmpdir(), 'valhalla-exports-other-')) });
    const job = await startExport({ dataset: 'system_logs' });
    await runJobs();
    expect((await get(job.id)).status).toBe('succeeded');
    const res = await t.inject({ method: 'GET', url: `${ROOT}/${job.id}/download` }, other);
    expect(res.statusCode, res.body).toBe(404);
    expect(res.json()).toMatchObject({ type: '/problems/resource-not-found', reason: 'export-file-missing' });
    expect(res.json().detail).toContain('EXPORT_DIR');
    expect(res.headers.etag).toBeUndefined();
    expect(res.headers['content-disposition']).toBeUndefined();
    // The instance that holds it serves it.
    expect((await t.inject({ method: 'GET', url: `${ROOT}/${job.id}/download` })).statusCode).toBe(200);
  });

  it('answers 304 to If-None-Match with the tag, its weak form, a list holding it, or *; 200 otherwise', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    await runJobs();
    const url = `${ROOT}/${job.id}/download`;
    const etag = (await t.inject({ method: 'GET', url })).headers.etag as string;
    for (const header of [etag, `W/${etag}`, `"x", ${etag}`, `"x",W/${etag}`, '*']) {
      const res = await t.inject({ method: 'GET', url, headers: { 'if-none-match': header } });
      expect(res.statusCode, header).toBe(304);
      expect(res.body).toBe('');
    }
    for (const header of ['"x"', `"${etag}"`, 'W/"y", "z"']) expect((await t.inject({ method: 'GET', url, headers: { 'if-none-match': header } })).statusCode, header).toBe(200);
  });

  it('marks an expired export deleted when its file is already gone from the shared dir, and keeps it when the delete fails', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    await runJobs();
    await t.app.db.update(exportJobs).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(exportJobs.id, job.id));
    // An EXPORT_DIR where the file cannot be deleted (a regular file in the way of the directory).
    const blocked = join(dir, 'blocked-file');
    writeFileSync(blocked, 'x');
    const stuck = createExporter({ service: t.app.exports.service, db: t.app.db, datasets: t.app.retention, snapshots: t.app.snapshots, dir: blocked, ttlMs: DAY, batchSize: 5, log: t.app.log });
    await stuck.expire();
    expect((await t.app.exports.service.row(job.id))!.fileDeletedAt).toBeNull();
    rmSync(join(dir, `export-${job.id}.ndjson`));
    await t.app.exports.exporter.expire();
    expect((await t.app.exports.service.row(job.id))!.fileDeletedAt).not.toBeNull();
  });
});

const openExclusiveForTest: OpenSink = async (path) => {
  const handle = await open(path, 'wx');
  return { write: (data) => handle.write(data), close: () => handle.close() };
};

describe('exports: crashes and shutdowns', () => {
  const filesOf = (id: number) => readdirSync(dir).filter((f) => f.startsWith(`export-${id}.`));
  const ofJob = (id: number) => and(eq(jobQueue.name, 'exports:run'), sql`${jobQueue.payload}->>'exportId' = ${String(id)}`);

  it('runs with a short lease renewed by a heartbeat (a dead runner is taken over within minutes, not an hour)', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    const [row] = await t.app.db.select().from(jobQueue).where(ofJob(job.id));
    expect(row).toBeDefined();
    expect(EXPORT_LEASE_MS).toBeLessThanOrEqual(120_000);
    await runJobs();
    expect((await get(job.id)).status).toBe('succeeded');
  });

  it('cancelling an export whose runner died leaves no partial file behind', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    let writes = 0;
    let release!: (err: Error) => void;
    const frozen = new Promise<never>((_, reject) => (release = reject));
    const dying = exporterWith(async (path) => {
      const handle = await open(path, 'wx');
      return { write: async (data) => (++writes > 1 ? frozen : handle.write(data)), close: () => handle.close() };
    });
    const running = dying.run(job.id).catch(() => {});
    await expect.poll(() => filesOf(job.id), { timeout: 5_000 }).toEqual([`export-${job.id}.ndjson.part`]);
    expect((await get(job.id)).status).toBe('running');
    const cancel = await t.inject({ method: 'POST', url: `${ROOT}/${job.id}/status`, payload: { status: 'cancelled' } });
    expect(cancel.statusCode, cancel.body).toBe(200);
    try {
      expect(filesOf(job.id)).toEqual([]);
    } finally {
      release(new Error('process gone'));
      await running;
    }
  });

  it('fences a runner that froze past its lease: after a takeover it stops at its next batch and touches neither the file nor the outcome', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    let writes = 0;
    let resume!: () => void;
    const frozen = new Promise<void>((res) => (resume = res));
    const told: string[] = [];
    const slow = createExporter({
      service: t.app.exports.service, db: t.app.db, datasets: t.app.retention, snapshots: t.app.snapshots, dir, ttlMs: DAY, batchSize: 5, log: t.app.log,
      onFinished: (f) => void told.push(f.status),
      openSink: async (path) => {
        const handle = await open(path, 'wx');
        return { write: async (data) => (++writes > 1 ? frozen.then(() => handle.write(data)) : handle.write(data)), close: () => handle.close() };
      },
    });
    const first = slow.run(job.id);
    await expect.poll(() => filesOf(job.id), { timeout: 5_000 }).toEqual([`export-${job.id}.ndjson.part`]);
    await new Promise((res) => setTimeout(res, 5)); // a later start (the lease ran out meanwhile)
    await exporterWith(openExclusiveForTest).run(job.id); // the takeover, to the end
    const done = await get(job.id);
    expect(done.status).toBe('succeeded');
    resume();
    await first;
    expect(told).toEqual([]);
    expect(await get(job.id)).toMatchObject({ status: 'succeeded', sha256: done.sha256, rowsExported: done.rowsExported });
    const file = await t.inject({ method: 'GET', url: `${ROOT}/${job.id}/download` });
    expect(createHash('sha256').update(file.rawPayload).digest('hex')).toBe(done.sha256);
  });

  it('removes a partial file when the job finds its export no longer queued, and sweeps orphaned ones older than the lease', async () => {
    const cancelled = await startExport({ dataset: 'system_logs' });
    await t.inject({ method: 'POST', url: `${ROOT}/${cancelled.id}/status`, payload: { status: 'cancelled' } });
    writeFileSync(join(dir, `export-${cancelled.id}.ndjson.part`), 'left by a dead runner');
    await t.app.exports.exporter.run(cancelled.id);
    expect(filesOf(cancelled.id)).toEqual([]);
    // The sweep: an old orphan goes, a fresh one and one of an export still queued stay.
    const queued = await startExport({ dataset: 'system_logs' });
    const old = new Date(Date.now() - 2 * EXPORT_LEASE_MS);
    const orphan = join(dir, `export-${cancelled.id}.csv.part`);
    const fresh = join(dir, 'export-999999.csv.part');
    const live = join(dir, `export-${queued.id}.ndjson.part`);
    for (const f of [orphan, fresh, live]) writeFileSync(f, 'x');
    utimesSync(orphan, old, old);
    utimesSync(live, old, old);
    await t.app.exports.exporter.expire();
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(live)).toBe(true);
    rmSync(fresh);
    rmSync(live);
    await runJobs();
  });

  it('a shutdown does not consume an attempt: the fifth interruption leaves the export queued with a job that finishes it', async () => {
    await t.app.db.insert(systemLogs).values(Array.from({ length: 300 }, (_, i) => ({ level: 'info' as const, source: 'export-test', event: 'export.bulk', message: `bulk ${i}`, instanceId: 'test' })));
    const b = await t.another({ EXPORT_DIR: dir, EXPORT_BATCH_SIZE: 1 });
    const job = await startExport({ dataset: 'system_logs' });
    await t.app.db.update(jobQueue).set({ attempts: 4 }).where(ofJob(job.id)); // four earlier interruptions, as counted before the fix
    const pass = b.jobs.runDueQueued(10);
    await expect.poll(async () => (await get(job.id)).rowsExported, { timeout: 10_000, interval: 5 }).toBeGreaterThan(0);
    await b.jobs.stop(); // what SIGTERM does
    await pass;
    const [row] = await t.app.db.select().from(jobQueue).where(ofJob(job.id));
    expect(row).toMatchObject({ status: 'queued', attempts: 4, lastError: 'interrupted by shutdown' });
    expect(await get(job.id)).toMatchObject({ status: 'queued', rowsExported: 0 });
    expect(filesOf(job.id)).toEqual([]);
    await runJobs();
    expect((await get(job.id)).status).toBe('succeeded');
  });

  it('fails the export with a clear error when its job is given up (a runner that died on its last attempt)', async () => {
    const job = await startExport({ dataset: 'system_logs' });
    await t.app.exports.service.start(job.id); // the runner that then died
    writeFileSync(join(dir, `export-${job.id}.ndjson.part`), 'partial');
    await t.app.db.update(jobQueue).set({ status: 'running', attempts: 5, maxAttempts: 5, lockedBy: 'dead-instance', lockedUntil: new Date(Date.now() - 1000) }).where(ofJob(job.id));
    await runJobs();
    const [row] = await t.app.db.select().from(jobQueue).where(ofJob(job.id));
    expect(row!.status).toBe('dead');
    const after = await get(job.id);
    expect(after).toMatchObject({ status: 'failed', downloadUrl: null });
    expect(after.error).toContain('given up');
    expect(filesOf(job.id)).toEqual([]);
  });
});

describe('export formats: every timestamp is ISO 8601 UTC', () => {
  it('writes every timestamp column of every dataset as ...T...Z, in NDJSON and CSV', async () => {
    await t.inject({ method: 'GET', url: '/system/admin/operations' });
    const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    let checked = 0;
    for (const dataset of t.app.retention.list()) {
      const timestampKeys = Object.entries(getTableColumns(dataset.table))
        .filter(([, c]) => c.getSQLType().startsWith('timestamp'))
        .map(([key]) => key);
      for (const format of ['ndjson', 'csv'] as const) {
        const job = await startExport({ dataset: dataset.name, format });
        await runJobs();
        const res = await t.inject({ method: 'GET', url: `${ROOT}/${job.id}/download` });
        expect(res.statusCode, `${dataset.name}: ${res.body.slice(0, 200)}`).toBe(200);
        let rows: Array<Record<string, unknown>>;
        if (format === 'ndjson') rows = res.body.split('\n').filter(Boolean).map((l) => JSON.parse(l));
        else {
          const [header, ...lines] = parseCsv(res.body);
          rows = lines.map((cells) => Object.fromEntries(header!.map((h, i) => [h, cells[i] === '' ? null : cells[i]])));
        }
        for (const r of rows) {
          for (const key of timestampKeys) {
            if (r[key] === null || r[key] === undefined) continue;
            expect(r[key], `${dataset.name}.${key} (${format})`).toMatch(iso);
            checked++;
          }
        }
      }
    }
    // The audit trail (text-mode time column) was among them.
    expect(checked).toBeGreaterThan(0);
    const audit = await startExport({ dataset: 'admin_operations' });
    await runJobs();
    const first = JSON.parse((await t.inject({ method: 'GET', url: `${ROOT}/${audit.id}/download` })).body.split('\n')[0]!);
    expect(first.occurredAt).toMatch(iso);
  });
});

describe('import dry run runs the import and rolls it back', () => {
  const doc = (sections: Record<string, unknown[]>) => ({ kind: 'valhalla-snapshot', version: 1, createdAt: new Date().toISOString(), sections });
  const both = async (body: Record<string, unknown>) => {
    const real = await t.inject({ method: 'POST', url: '/system/imports', payload: body });
    const dry = await t.inject({ method: 'POST', url: '/system/imports?dryRun=true', payload: body });
    return { real, dry };
  };

  it('refuses what the import refuses: a retention below the audit floor', async () => {
    const { real, dry } = await both(doc({ retention_policies: [{ category: 'admin_operations', retainDays: 1, enabled: true }] }));
    expect(real.statusCode, real.body).toBe(422);
    expect(dry.statusCode, dry.body).toBe(422);
    expect(dry.json().detail).toBe(real.json().detail);
  });

  it('refuses what the import refuses: a flag prerequisite cycle', async () => {
    const { real, dry } = await both(
      doc({
        feature_flags: [
          { key: 'dry-a', type: 'release', enabled: true, prerequisites: [{ flagKey: 'dry-b' }] },
          { key: 'dry-b', type: 'release', enabled: true, prerequisites: [{ flagKey: 'dry-a' }] },
        ],
      }),
    );
    expect(real.statusCode, real.body).toBe(422);
    expect(dry.statusCode, dry.body).toBe(422);
  });

  it('keeps nothing of an accepted dry run', async () => {
    const body = doc({ retention_policies: [{ category: 'system_logs', retainDays: 45, enabled: true }] });
    const before = await t.inject({ method: 'GET', url: '/system/retention/system_logs' });
    const dry = await t.inject({ method: 'POST', url: '/system/imports?dryRun=true', payload: body });
    expect(dry.statusCode, dry.body).toBe(200);
    expect(dry.json().dryRun).toBe(true);
    const after = await t.inject({ method: 'GET', url: '/system/retention/system_logs' });
    expect(after.statusCode).toBe(before.statusCode);
    if (before.statusCode === 200) expect(after.json().retainDays).toBe(before.json().retainDays);
    else expect(after.statusCode).toBe(404);
  });
});
