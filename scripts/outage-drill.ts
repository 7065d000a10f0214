/**
 * `npm run drill:outage`: the fault drill of the "Survive faults" issue, with real processes.
 * Two servers (`src/server.ts`) on one PostgreSQL reached through a TCP proxy on loopback; a
 * light write load on both; the proxy cuts every connection for CUT_MS; then the figures:
 * slowest answer during the cut, time to /ready 200 and to the first successful write after
 * the restore, time for a flag flipped on one instance to be served by the other, and whether
 * both processes are still alive and every write answered 503 during the cut stayed unwritten.
 *
 * Needs PostgreSQL: DATABASE_URL (or TEST_DATABASE_URL) names the server; the drill creates and
 * drops a database of its own. Traffic goes to 127.0.0.1 only; it stops by itself.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { generateApiKey } from '../plugins/api-keys/key-format.js';
import { proxyInFrontOf } from '../test/helpers/faulty-proxy.js';
import { freePort, runServer } from '../test/lifecycle/server-process.js';

const CUT_MS = Number(process.env.DRILL_CUT_MS ?? 5000);
const server = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const name = `vk_drill_${randomBytes(3).toString('hex')}`;
const admin = postgres(server, { max: 1, onnotice: () => {} });
await admin.unsafe(`create database "${name}"`);
const dbUrl = new URL(server);
dbUrl.pathname = `/${name}`;
const { proxy, url } = await proxyInFrontOf(dbUrl.toString());
const key = generateApiKey().token;
const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

const instances = await Promise.all(
  [0, 1].map(async () => {
    const port = await freePort();
    const p = runServer({ HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: url, ADMIN_API_KEY: key, LOG_LEVEL: 'warn', TRACE_SAMPLE_RATE: '0' });
    return { ...p, origin: `http://127.0.0.1:${port}`, exitedEarly: false };
  }),
);
for (const i of instances) void i.exited.then(() => (i.exitedEarly = true));

async function status(url: string, init: RequestInit = {}): Promise<number> {
  try {
    const res = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(20_000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}
const write = (origin: string, body: object) => status(`${origin}/system/flags`, { method: 'POST', body: JSON.stringify(body) });
async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) return -1;
    await sleep(10);
  }
  return Date.now() - start;
}

const figures: Record<string, number | boolean | string> = {};
try {
  for (const i of instances) {
    if ((await until(async () => (await status(`${i.origin}/ready`)) === 200, 60_000)) < 0) throw new Error(`an instance never became ready:\n${i.output.join('\n')}`);
  }
  const [a, b] = instances as [(typeof instances)[0], (typeof instances)[0]];
  await write(a.origin, { key: 'drill.flag', type: 'kill-switch', enabled: false });

  proxy.cut();
  const cutAt = Date.now();
  const writes: Array<Promise<{ key: string; status: number; ms: number }>> = [];
  for (let n = 0; Date.now() - cutAt < CUT_MS; n++) {
    const k = `drill.cut.${n}`;
    const started = Date.now();
    writes.push(write((n % 2 ? a : b).origin, { key: k, type: 'release' }).then((s) => ({ key: k, status: s, ms: Date.now() - started })));
    await sleep(100);
  }
  figures.liveDuringCut = (await status(`${a.origin}/live`)) === 200 && (await status(`${b.origin}/live`)) === 200;
  proxy.restore();
  const restoredAt = Date.now();
  const outcomes = await Promise.all(writes);
  figures.writesDuringCut = outcomes.length;
  figures.statusesDuringCut = [...new Set(outcomes.map((o) => o.status))].join(',');
  figures.slowestAnswerDuringCutMs = Math.max(...outcomes.map((o) => o.ms));
  figures.readyAfterRestoreMs = await until(async () => (await status(`${a.origin}/ready`)) === 200 && (await status(`${b.origin}/ready`)) === 200, 30_000);
  figures.firstWriteAfterRestoreMs = (await until(async () => (await write(b.origin, { key: `drill.after.${Date.now()}`, type: 'release' })) === 201, 30_000)) >= 0 ? Date.now() - restoredAt : -1;
  const flipped = Date.now();
  await status(`${a.origin}/system/flags/drill.flag`, { method: 'PATCH', body: JSON.stringify({ enabled: true }) });
  figures.flagReachedOtherInstanceMs = await until(async () => {
    const res = await fetch(`${b.origin}/system/flags/drill.flag/evaluate?subject=u1`, { headers });
    return (await res.json() as { reason?: string }).reason !== 'DISABLED';
  }, 30_000);
  await sleep(1500);
  const direct = postgres(dbUrl.toString(), { max: 1, onnotice: () => {} });
  const answered503 = new Set(outcomes.filter((o) => o.status === 503).map((o) => o.key));
  const rows = await direct<{ key: string }[]>`select key from feature_flags where key like 'drill.cut.%'`;
  figures.committedAfter503 = rows.filter((r) => answered503.has(r.key)).length;
  await direct.end();
  figures.bothProcessesAlive = instances.every((i) => !i.exitedEarly);
} finally {
  for (const i of instances) i.child.kill('SIGTERM');
  await Promise.all(instances.map((i) => Promise.race([i.exited, sleep(15_000)])));
  await proxy.close();
  await admin.unsafe(`drop database if exists "${name}" with (force)`);
  await admin.end();
}
console.log(JSON.stringify(figures, null, 2));
