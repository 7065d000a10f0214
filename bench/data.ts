import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { createTestApp, type TestApp } from '../test/helpers/app.js';
import { serverUrl } from '../test/helpers/database.js';
import { cleanEnv, projectRoot } from '../test/lifecycle/server-process.js';

// `npm run bench:data` (PostgreSQL: TEST_DATABASE_URL or DATABASE_URL): the data layer's issue
// targets, on a fresh database of its own, in this process.
// 1. Webhook deliveries per second to a loopback sink, one dispatcher, two in this process, then
//    two in two processes, on one PostgreSQL, counting duplicate deliveries (by webhook-id).
// 2. Export rows per second and RSS growth for BENCH_EXPORT_ROWS system_logs rows (NDJSON).
// 3. A purge of BENCH_PURGE_ROWS rows while writes continue: p99 of those writes before and during.

function intFromEnv(name: string, fallback: number): number {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}
const DELIVERIES = intFromEnv('BENCH_DELIVERIES', 10_000);
const EXPORT_ROWS = intFromEnv('BENCH_EXPORT_ROWS', 1_000_000);
const PURGE_ROWS = intFromEnv('BENCH_PURGE_ROWS', 1_000_000);
const WRITE_SECONDS = intFromEnv('BENCH_WRITE_SECONDS', 5);

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))] ?? 0;

async function sink() {
  const seen = new Map<string, number>();
  const server = createServer((req, res) => {
    const id = req.headers['webhook-id'];
    if (typeof id === 'string') seen.set(id, (seen.get(id) ?? 0) + 1);
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, seen, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

async function enqueue(app: FastifyInstance, channelId: number, n: number) {
  for (let done = 0; done < n; done += 1000) {
    await app.db.transaction(async (tx) => {
      for (let i = done; i < Math.min(n, done + 1000); i++) await app.notifications.service.enqueue(tx, { type: 'bench.event', payload: { i } }, { channelIds: [channelId] });
    });
  }
}

async function webhooks(t: TestApp) {
  process.env.NOTIFY_SECRET_BENCH = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
  const target = await sink();
  const res = await t.inject({ method: 'POST', url: '/system/notify/channels', payload: { name: 'bench', type: 'webhook', events: ['bench.*'], config: { url: target.url, secretEnvs: ['NOTIFY_SECRET_BENCH'] } } });
  const channelId = res.json<{ id: number }>().id;
  const second = await t.another();
  const lines: string[] = [];
  for (const [label, dispatchers] of [['1 dispatcher', [t.app]], ['2 dispatchers', [t.app, second]]] as const) {
    target.seen.clear();
    await enqueue(t.app, channelId, DELIVERIES);
    const start = performance.now();
    const claimed = await Promise.all(dispatchers.map((a) => a.notifications.dispatcher.drain()));
    const seconds = (performance.now() - start) / 1000;
    const duplicates = [...target.seen.values()].reduce((sum, n) => sum + n - 1, 0);
    lines.push(`webhooks  ${label.padEnd(14)} ${fmt(DELIVERIES / seconds).padStart(8)} deliveries/s  (${fmt(DELIVERIES)} in ${seconds.toFixed(1)} s, claimed ${claimed.join(' + ')}, ${target.seen.size} distinct ids, ${duplicates} duplicates)`);
  }
  // Two dispatchers in two processes (kernels of their own, test/helpers/dispatcher-process.ts):
  // the deployment the no-duplicates target is about, each with its own event loop and pool.
  target.seen.clear();
  await enqueue(t.app, channelId, DELIVERIES);
  const procs = [dispatcherProcess(t), dispatcherProcess(t)];
  try {
    await Promise.all(procs.map((p) => p.line(/^ready$/m)));
    const start = performance.now();
    for (const p of procs) p.child.stdin.write('go\n');
    const claimed = (await Promise.all(procs.map((p) => p.line(/^claimed (\d+)$/m)))).map((m) => m[1]);
    const seconds = (performance.now() - start) / 1000;
    const duplicates = [...target.seen.values()].reduce((sum, n) => sum + n - 1, 0);
    lines.push(`webhooks  ${'2 processes'.padEnd(14)} ${fmt(DELIVERIES / seconds).padStart(8)} deliveries/s  (${fmt(DELIVERIES)} in ${seconds.toFixed(1)} s, claimed ${claimed.join(' + ')}, ${target.seen.size} distinct ids, ${duplicates} duplicates)`);
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  }
  await target.close();
  return lines;
}

function dispatcherProcess(t: TestApp) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/dispatcher-process.ts'], {
    cwd: projectRoot,
    env: cleanEnv({ DATABASE_URL: t.db.url!, ADMIN_API_KEY: t.adminKey, LOG_LEVEL: 'silent', RUN_JOBS: 'false', WEBHOOK_ALLOW_PRIVATE: 'true', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0', NOTIFY_DISPATCH_BATCH: '500', NOTIFY_DISPATCH_CONCURRENCY: '64' }),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const line = async (pattern: RegExp): Promise<RegExpMatchArray> => {
    for (;;) {
      const m = out.match(pattern);
      if (m) return m;
      if (child.exitCode !== null) throw new Error(`dispatcher process exited ${child.exitCode}: ${out}`);
      await sleep(10);
    }
  };
  return { child, line };
}

async function seedLogs(app: FastifyInstance, n: number, daysAgo: number) {
  // One statement per 100,000 rows, generated by the server.
  for (let done = 0; done < n; done += 100_000) {
    const count = Math.min(100_000, n - done);
    await app.db.execute(sql`insert into system_logs (occurred_at, level, source, event, message, instance_id, data)
      select now() - make_interval(days => ${daysAgo}) - (g * interval '1 millisecond'), 'info', 'bench', 'bench.row', 'row ' || g || ', with "quotes" and =formula', 'bench', jsonb_build_object('g', g)
      from generate_series(1, ${count}) g`);
  }
}

async function exportRows(t: TestApp) {
  await seedLogs(t.app, EXPORT_ROWS, 1);
  const job = await t.inject({ method: 'POST', url: '/system/exports', payload: { dataset: 'system_logs' } });
  const id = job.json<{ id: number }>().id;
  global.gc?.();
  const before = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  let peak = before;
  let peakHeap = 0;
  let peakExternal = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.rss);
    peakHeap = Math.max(peakHeap, m.heapTotal);
    peakExternal = Math.max(peakExternal, m.external);
  }, 20);
  const start = performance.now();
  await t.app.jobs.runDueQueued(1);
  const seconds = (performance.now() - start) / 1000;
  clearInterval(sampler);
  const done = (await t.inject({ method: 'GET', url: `/system/exports/${id}` })).json<{ rowsExported: number; sizeBytes: number; status: string }>();
  // With --expose-gc: what the export left behind once garbage is collected.
  global.gc?.();
  const heap = process.memoryUsage().heapUsed;
  return [`export    ndjson         ${fmt(done.rowsExported / seconds).padStart(8)} rows/s        (${fmt(done.rowsExported)} rows, ${fmt(done.sizeBytes / 1048576)} MiB in ${seconds.toFixed(1)} s, ${done.status}, EXPORT_HEAP_GROWING_PERCENT=${t.app.env.EXPORT_HEAP_GROWING_PERCENT}; RSS growth ${fmt((peak - before) / 1048576)} MiB, peak ${fmt(peak / 1048576)} MiB (heap total ${fmt(peakHeap / 1048576)}, external ${fmt(peakExternal / 1048576)}), heap used ${fmt(heapBefore / 1048576)} MiB before, ${fmt(heap / 1048576)} MiB after)`];
}

/**
 * Audited writes (a manual notification: a transaction with an outbox insert and an audit entry)
 * at a steady WRITES_PER_SECOND, for `ms` or until `until` settles; latencies of the accepted ones.
 */
const WRITES_PER_SECOND = intFromEnv('BENCH_WRITES_PER_SECOND', 100);
async function writeLatencies(app: FastifyInstance, t: TestApp, ms: number, until?: Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  const end = Date.now() + ms;
  let finished = false;
  void until?.finally(() => (finished = true));
  const gap = 1000 / WRITES_PER_SECOND;
  let next = performance.now();
  while (until ? !finished : Date.now() < end) {
    const start = performance.now();
    const res = await t.inject({ method: 'POST', url: '/system/notify', payload: { type: 'bench.write', payload: {} } }, app);
    if (res.statusCode !== 202) throw new Error(`a bench write answered ${res.statusCode}: ${res.body}`);
    out.push(performance.now() - start);
    next += gap;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
  }
  return out;
}

async function purge(t: TestApp) {
  await t.app.db.execute(sql`truncate system_logs`);
  await seedLogs(t.app, PURGE_ROWS, 60);
  await t.inject({ method: 'POST', url: '/system/retention', payload: { category: 'system_logs', retainDays: 30 } });
  const writer = await t.another();
  const before = await writeLatencies(writer, t, WRITE_SECONDS * 1000);
  const start = performance.now();
  const run = t.app.retentionPolicies.runner.run('system_logs', { dryRun: false, audit: async () => undefined });
  const during = await writeLatencies(writer, t, 0, run);
  const result = await run;
  const seconds = (performance.now() - start) / 1000;
  return [
    `purge     ${fmt(result?.purged ?? 0)} rows in ${seconds.toFixed(1)} s (${result?.batches} batches, ${result?.status}): ${fmt((result?.purged ?? 0) / seconds)} rows/s`,
    `          write p99 before ${p99(before).toFixed(1)} ms (${before.length} writes), during ${p99(during).toFixed(1)} ms (${during.length} writes): ${(p99(during) / p99(before)).toFixed(2)}x`,
  ];
}

async function main() {
  if (!serverUrl()) throw new Error('bench:data needs PostgreSQL: set TEST_DATABASE_URL (or DATABASE_URL) to a server where it may create a database');
  const dir = mkdtempSync(path.join(tmpdir(), 'valhalla-bench-exports-'));
  const t = await createTestApp({
    LOG_LEVEL: 'silent',
    RATE_LIMIT_DEFAULT_MAX: 0,
    WEBHOOK_ALLOW_PRIVATE: true,
    NOTIFY_DISPATCH_BATCH: 500,
    NOTIFY_DISPATCH_CONCURRENCY: 64,
    EXPORT_DIR: dir,
    EXPORT_BATCH_SIZE: intFromEnv('BENCH_EXPORT_BATCH', 5000),
    RETENTION_BATCH_SIZE: 5000,
    RETENTION_BATCH_PAUSE_MS: 20,
    RETENTION_RUN_BUDGET_MS: 3_600_000,
    ...(process.env.EXPORT_HEAP_GROWING_PERCENT !== undefined && { EXPORT_HEAP_GROWING_PERCENT: Number(process.env.EXPORT_HEAP_GROWING_PERCENT) }),
  });
  try {
    const parts = (process.env.BENCH_PARTS ?? 'webhooks,export,purge').split(',');
    const lines = [
      ...(parts.includes('webhooks') ? await webhooks(t) : []),
      ...(parts.includes('export') ? await exportRows(t) : []),
      ...(parts.includes('purge') ? await purge(t) : []),
    ];
    console.log(lines.join('\n'));
  } finally {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
