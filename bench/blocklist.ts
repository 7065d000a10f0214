import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon, { type Result } from 'autocannon';
import postgres from 'postgres';
import { generateApiKey } from '../plugins/api-keys/key-format.js';
import { BlocklistMatcher, type MatchInput } from '../plugins/blocklist/matcher.js';
import { benchRequests, benchRuleBodies, toActiveRules, toInput } from './blocklist-rules.js';
import { cpuMsOf, median, rssOf, sleep, startServer, stderrTails, intFromEnv, stopAll } from './servers.js';

// `npm run bench:blocklist` (also part of `npm run bench`): the blocklist with 100,000 mixed rules.
// 1. In process: checks per second (the matcher alone on parsed requests; the hook's whole work,
//    address parsing and path normalisation included; and with every user agent and path new, so
//    no memo helps), the time to build the matcher, and the heap the rules take.
// 2. Over HTTP: bare Fastify, the kernel with no rules and the kernel with 100,000 rules (each on
//    its own temporary PGlite), driven alternately by autocannon on the authenticated GET; the
//    time a rule change takes to apply (the write answers after this instance reloaded every
//    rule) and the kernel's own figure for the reload; the resident memory of both kernels.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const SETTINGS = {
  rules: intFromEnv('BENCH_BLOCKLIST_RULES', 100_000),
  rounds: intFromEnv('BENCH_ROUNDS', 3),
  durationSeconds: intFromEnv('BENCH_DURATION', 5),
  warmupSeconds: intFromEnv('BENCH_WARMUP', 2),
  connections: intFromEnv('BENCH_CONNECTIONS', 50),
};
const ROUTE = process.env.BENCH_MEMORY_ROUTE ?? '/system/info';
const KEY = generateApiKey().token;
const AUTH = { authorization: `Bearer ${KEY}` };
/** Issue 6's targets. */
const CHECKS_TARGET = 1_000_000;
const RELOAD_TARGET_MS = 1000;
const RATIO_TOLERANCE = 0.1;

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const gc = (globalThis as { gc?: () => void }).gc;

// ---- in process --------------------------------------------------------------------------

function perSecond(seconds: number, inputs: readonly unknown[], run: (i: number) => void): number {
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let n = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < inputs.length; i++) run(i);
    n += inputs.length;
  }
  return Math.round(n / ((performance.now() - started) / 1000));
}

function inProcess() {
  const bodies = benchRuleBodies(SETTINGS.rules);
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const rules = toActiveRules(bodies);
  const buildStarted = performance.now();
  let matcher = new BlocklistMatcher(rules);
  const buildMs = performance.now() - buildStarted;
  gc?.();
  const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 1_048_576;
  // Built again: the first build also paid for the JIT warming up.
  const rebuildStarted = performance.now();
  matcher = new BlocklistMatcher(rules);
  const rebuildMs = performance.now() - rebuildStarted;

  const raw = benchRequests(10_000, bodies);
  const inputs: MatchInput[] = raw.map(toInput);
  const now = Date.now();
  let blocked = 0;
  for (const input of inputs) if (matcher.decide(input, now)?.outcome === 'block') blocked++;
  const seconds = Math.max(1, Math.min(3, SETTINGS.durationSeconds));
  perSecond(0.5, inputs, (i) => matcher.decide(inputs[i]!, now));
  const matcherOnly = perSecond(seconds, inputs, (i) => matcher.decide(inputs[i]!, now));
  const hookPath = perSecond(seconds, raw, (i) => matcher.decide(toInput(raw[i]!), Date.now()));
  let unique = 0;
  const uncached = perSecond(seconds, raw.slice(0, 1000), (i) => {
    const r = raw[i]!;
    unique++;
    matcher.decide(toInput({ ip: r.ip, ua: `${r.ua} ${unique}`, url: `${r.url}/${unique}` }), now);
  });
  const byType: Record<string, number> = {};
  for (const b of bodies) byType[b.type] = (byType[b.type] ?? 0) + 1;
  return { rules: bodies.length, byType, buildMs: Math.round(rebuildMs), firstBuildMs: Math.round(buildMs), heapMiB: Math.round(heapMiB * 10) / 10, gcExposed: gc !== undefined, blockedShare: blocked / inputs.length, matcherOnly, hookPath, uncached, bodies };
}

// ---- over HTTP ---------------------------------------------------------------------------

/** Resident set size in MiB, or null when it cannot be read. */
const rssMiB = (pid: number | undefined): number | null => rssOf(pid)?.rssMiB ?? null;

async function post(origin: string, url: string, body: unknown): Promise<{ status: number; ms: number; json: unknown }> {
  for (let attempt = 0; ; attempt++) {
    const started = performance.now();
    const res = await fetch(`${origin}${url}`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json: unknown = await res.json();
    // Load shedding (the embedded database works on the server's own event loop): wait as told.
    if (res.status === 503 && attempt < 5) {
      await sleep(Number(res.headers.get('retry-after') ?? 2) * 1000);
      continue;
    }
    return { status: res.status, ms: performance.now() - started, json };
  }
}

/**
 * Where each kernel keeps its data: a temporary PGlite folder each, or with DATABASE_URL two
 * fresh databases on that server (dropped afterwards), so one kernel holds the rules and the other none.
 */
async function databases(): Promise<{ envs: Array<Record<string, string>>; cleanup: () => Promise<void> }> {
  const base = process.env.DATABASE_URL;
  if (!base) {
    const dirs = [mkdtempSync(path.join(tmpdir(), 'vk-bl-0-')), mkdtempSync(path.join(tmpdir(), 'vk-bl-n-'))];
    return { envs: dirs.map((d) => ({ DATABASE_URL: '', DATA_DIR: d })), cleanup: async () => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })) };
  }
  const names = [`vk_bench_bl_empty_${process.pid}`, `vk_bench_bl_loaded_${process.pid}`];
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  for (const name of names) await admin.unsafe(`create database ${name}`);
  const urlFor = (name: string) => {
    const u = new URL(base);
    u.pathname = `/${name}`;
    return u.toString();
  };
  return {
    envs: names.map((n) => ({ DATABASE_URL: urlFor(n) })),
    cleanup: async () => {
      for (const name of names) await admin.unsafe(`drop database if exists ${name} with (force)`).catch(() => {});
      await admin.end();
    },
  };
}

async function overviewLoadMs(origin: string): Promise<number | null> {
  const res = await fetch(`${origin}/system/admin`, { headers: AUTH });
  const body = (await res.json()) as { sections?: { blocklist?: { lastLoadMs?: number } }; blocklist?: { lastLoadMs?: number } };
  return body.sections?.blocklist?.lastLoadMs ?? body.blocklist?.lastLoadMs ?? null;
}

/** The kernel's V8 heap in use, from its own /metrics (prom-client's default metrics). */
async function heapUsedMiB(origin: string): Promise<number | null> {
  try {
    const text = await (await fetch(`${origin}/metrics`)).text();
    const bytes = Number(/^nodejs_heap_size_used_bytes (\d+(?:\.\d+)?)/m.exec(text)?.[1] ?? NaN);
    return Number.isFinite(bytes) ? Math.round(bytes / 104_857.6) / 10 : null;
  } catch {
    return null;
  }
}

/** With BENCH_CPU_PROF=<dir>, each kernel writes a V8 CPU profile there when it exits. */
function profileArgs(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(dir, name)}`] : [];
}

function drive(url: string, seconds: number): Promise<Result> {
  return Promise.resolve(autocannon({ url, headers: AUTH, connections: SETTINGS.connections, duration: seconds, timeout: 10 }));
}

/**
 * Waits until no server is still busy with the previous run: after a run a kernel flushes its
 * batched writes (access log, traces, counters) into its embedded database and collects garbage
 * for a second or more, on the cores the next run needs. Without this wait the server measured
 * right after a kernel ran slower than the same server measured after bare Fastify: an A/A run
 * (two identical kernels, one rule) showed -23.6 % throughput for the second at equal CPU per
 * request, with the fixed rotation putting the loaded kernel after the empty one in two rounds
 * of three. Settled: every server under 5 % of a core over half a second (at most 15 s).
 */
async function settle(pids: Array<number | undefined>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const before = pids.map((p) => cpuMsOf(p));
    await sleep(500);
    const busy = pids.some((p, i) => {
      const a = before[i];
      const b = cpuMsOf(p);
      return a !== null && a !== undefined && b !== null && b - a > 25;
    });
    if (!busy) return;
  }
}

/** Seconds spent in garbage collection so far, by kind (major, minor, incremental, weakcb), from the kernel's /metrics. */
async function gcSeconds(origin: string | null): Promise<Record<string, number>> {
  if (!origin) return {};
  const text = await (await fetch(`${origin}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{kind="(\w+)"\} (\S+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

/** What one timed run cost the server: CPU µs and GC µs (by kind) per request answered. */
interface RunCost {
  cpuUsPerRequest: number | null;
  gcUsPerRequest: Record<string, number>;
}

/** Drives `url` and measures, around it, the server's CPU time and (for a kernel) its GC time. */
async function driveMeasured(target: { url: string; pid: number | undefined; origin: string | null }, seconds: number): Promise<{ result: Result; cost: RunCost }> {
  const cpuBefore = cpuMsOf(target.pid);
  const gcBefore = await gcSeconds(target.origin);
  const result = await drive(target.url, seconds);
  const cpuAfter = cpuMsOf(target.pid);
  const gcAfter = await gcSeconds(target.origin);
  const n = Math.max(1, result.requests.total);
  const gcUsPerRequest: Record<string, number> = {};
  for (const [kind, after] of Object.entries(gcAfter)) gcUsPerRequest[kind] = ((after - (gcBefore[kind] ?? 0)) * 1e6) / n;
  return { result, cost: { cpuUsPerRequest: cpuBefore === null || cpuAfter === null ? null : ((cpuAfter - cpuBefore) * 1000) / n, gcUsPerRequest } };
}

async function overHttp(bodies: ReturnType<typeof inProcess>['bodies']) {
  const stores = await databases();
  const kernelEnv = (i: number) => ({ ...stores.envs[i]!, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', NODE_ENV: 'production', ADMIN_API_KEY: KEY, RATE_LIMIT_DEFAULT_MAX: '1000000000' });
  try {
    console.error('starting bare Fastify and two kernels ...');
    const [bare, empty, loaded] = await Promise.all([
      startServer('bare', 'bench/bare-server.ts', {}, '/', { timeoutMs: 120_000 }),
      startServer('kernel, no rules', 'src/server.ts', kernelEnv(0), ROUTE, { probeHeaders: AUTH, timeoutMs: 120_000, nodeArgs: profileArgs('kernel-empty') }),
      startServer(`kernel, ${fmt(bodies.length)} rules`, 'src/server.ts', kernelEnv(1), ROUTE, { probeHeaders: AUTH, timeoutMs: 120_000, nodeArgs: profileArgs('kernel-loaded') }),
    ]);

    // Both kernels get the same history of writes before they are measured, so that the one
    // difference is the rules they hold: a kernel that served 2,000 client creations and ten
    // 10,000-rule imports runs its GETs on code V8 optimised for that mix, one that served only
    // GETs on code specialised for them. The kernel measured with no rules imports the same
    // rules into a policy of its own and deletes the policy (its rules go with it).
    const prepare = async (origin: string, discard: boolean): Promise<number[]> => {
      const own = bodies.map((b) => ({ ...b }));
      const clientRules = own.filter((b) => b.type === 'api_client');
      // api_client rules must name clients that exist: create one per rule and point the rule at it.
      for (const [n, body] of clientRules.entries()) {
        const res = await post(origin, '/system/api-clients', { name: `bench-client-${n}`, owner: 'bench', scopes: ['system:read'] });
        if (res.status !== 201) throw new Error(`client create answered ${res.status}: ${JSON.stringify(res.json).slice(0, 300)}`);
        body.value = String((res.json as { id: number }).id);
      }
      let policyId: number | null = null;
      if (discard) {
        const res = await post(origin, '/system/security/policies', { name: 'bench-discarded', mode: 'enforce', description: 'imported, then deleted with its rules' });
        if (res.status !== 201) throw new Error(`policy create answered ${res.status}: ${JSON.stringify(res.json).slice(0, 300)}`);
        policyId = (res.json as { id: number }).id;
      }
      const ms: number[] = [];
      for (let i = 0; i < own.length; i += 10_000) {
        const batch = own.slice(i, i + 10_000).map((b) => (policyId === null ? b : { ...b, policyId }));
        const res = await post(origin, '/system/security/blocklist/bulk', { rules: batch });
        if (res.status !== 201) throw new Error(`bulk import answered ${res.status}: ${JSON.stringify(res.json).slice(0, 500)}`);
        ms.push(res.ms);
      }
      if (policyId !== null) {
        const res = await fetch(`${origin}/system/security/policies/${policyId}`, { method: 'DELETE', headers: AUTH });
        if (res.status !== 204) throw new Error(`policy delete answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
      }
      return ms;
    };
    console.error(`creating ${fmt(bodies.filter((b) => b.type === 'api_client').length)} API clients and importing ${fmt(bodies.length)} rules (bulk, 10,000 a request) on both kernels ...`);
    const [importMs] = await Promise.all([prepare(loaded.origin, false), prepare(empty.origin, true)]);
    // A change applies when the write answers: this instance has reloaded all rules by then (the others on NOTIFY).
    const changeMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await post(loaded.origin, '/system/security/blocklist', { type: 'ip', value: `10.250.0.${i + 1}`, reason: 'bench change' });
      if (res.status !== 201) throw new Error(`rule create answered ${res.status}`);
      changeMs.push(res.ms);
    }
    const reloadMs = await overviewLoadMs(loaded.origin);
    const check = await fetch(`${loaded.origin}/system/security/blocklist/check?ip=10.250.0.1`, { headers: AUTH });
    if (((await check.json()) as { decision?: string }).decision !== 'block') throw new Error('the loaded kernel does not block a rule just added');

    const targets = [
      { name: 'bare', url: `${bare.origin}/`, pid: bare.child.pid, origin: null },
      { name: 'kernel, 0 rules', url: `${empty.origin}${ROUTE}`, pid: empty.child.pid, origin: empty.origin },
      { name: `kernel, ${fmt(bodies.length)} rules`, url: `${loaded.origin}${ROUTE}`, pid: loaded.child.pid, origin: loaded.origin },
    ];
    const loadStarted = performance.now();
    console.error(`warming up (${SETTINGS.warmupSeconds} s each) ...`);
    for (const t of targets) await drive(t.url, SETTINGS.warmupSeconds);
    const runs = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
    const costs = new Map<string, RunCost[]>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < SETTINGS.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const t of order) {
        await settle(targets.map((x) => x.pid));
        const { result, cost } = await driveMeasured(t, SETTINGS.durationSeconds);
        runs.get(t.name)!.push(result);
        costs.get(t.name)!.push(cost);
        const gc = Object.entries(cost.gcUsPerRequest).filter(([, us]) => us > 0.05).map(([kind, us]) => `${kind} ${us.toFixed(1)}`).join(', ');
        console.error(`round ${round + 1}/${SETTINGS.rounds} ${t.name.padEnd(24)} ${fmt(result.requests.average).padStart(8)} req/s  p99 ${result.latency.p99} ms  CPU ${cost.cpuUsPerRequest?.toFixed(1) ?? '?'} µs/req${gc ? `  GC µs/req: ${gc}` : ''}${result.non2xx ? `  non-2xx ${result.non2xx}` : ''}`);
      }
    }
    console.error(`load phase: ${Math.round(performance.now() - loadStarted)} ms; requests measured: ${targets.map((t) => `${t.name} ${runs.get(t.name)!.reduce((n, r) => n + r.requests.total, 0)}`).join(', ')}`);
    const heaps = [null, await heapUsedMiB(empty.origin), await heapUsedMiB(loaded.origin)];
    const rows = targets.map((t, i) => {
      const results = runs.get(t.name)!;
      const cost = costs.get(t.name)!;
      const cpu = cost.map((c) => c.cpuUsPerRequest).filter((c): c is number => c !== null);
      const gcTotal = cost.map((c) => Object.values(c.gcUsPerRequest).reduce((a, b) => a + b, 0));
      return { name: t.name, cpuUsPerRequest: cpu.length ? median(cpu) : null, gcUsPerRequest: t.origin ? median(gcTotal) : null, reqPerSec: median(results.map((r) => r.requests.average)), p99Ms: median(results.map((r) => r.latency.p99)), non2xx: results.reduce((n, r) => n + r.non2xx + r.errors, 0), rssMiB: rssMiB(t.pid), heapUsedMiB: heaps[i] ?? null };
    });
    // Paired by round: each round measures both kernels within seconds of each other, so their
    // ratio is not moved by whatever the machine did between rounds (bare's figure moved by
    // 40 % between rounds on the shared development machine).
    const emptyRuns = runs.get(targets[1]!.name)!;
    const loadedRuns = runs.get(targets[2]!.name)!;
    const pairedThroughput = median(loadedRuns.map((r, i) => r.requests.average / emptyRuns[i]!.requests.average));
    const emptyCost = costs.get(targets[1]!.name)!;
    const loadedCost = costs.get(targets[2]!.name)!;
    const pairedCpu = median(loadedCost.map((c, i) => (c.cpuUsPerRequest ?? NaN) / (emptyCost[i]!.cpuUsPerRequest ?? NaN)));
    return { database: process.env.DATABASE_URL ? 'postgres (DATABASE_URL)' : 'pglite', importMs, changeMs, reloadMs, rows, pairedThroughput, pairedCpu };
  } catch (err) {
    console.error(stderrTails());
    throw err;
  } finally {
    await stopAll();
    await stores.cleanup();
  }
}

async function main(): Promise<number> {
  const started = Date.now();
  console.error(`blocklist in process (${fmt(SETTINGS.rules)} rules) ...`);
  const local = inProcess();
  const http = await overHttp(local.bodies);
  const [bare, empty, loaded] = http.rows as [(typeof http.rows)[number], (typeof http.rows)[number], (typeof http.rows)[number]];
  const ratioEmpty = empty.reqPerSec / bare.reqPerSec;
  const ratioLoaded = loaded.reqPerSec / bare.reqPerSec;
  const ratioChange = ratioLoaded / ratioEmpty - 1;
  const changeMs = median(http.changeMs);

  console.log('');
  console.log(`blocklist bench: ${fmt(local.rules)} rules (${Object.entries(local.byType).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}; 1 % allow rules, 10 % expiring); node ${process.version}, ${cpus().length} CPUs`);
  console.log(`in process: ${fmt(local.matcherOnly)} checks/s (matcher on parsed requests), ${fmt(local.hookPath)} checks/s (the hook's work: address parsing and path normalisation included), ${fmt(local.uncached)} checks/s with every user agent and path new; ${Math.round(local.blockedShare * 100)} % of the requests blocked`);
  console.log(`  ${local.matcherOnly >= CHECKS_TARGET ? 'at or above' : 'BELOW'} the target of ${fmt(CHECKS_TARGET)} checks/s (matcher); build ${fmt(local.buildMs)} ms (first, cold JIT: ${fmt(local.firstBuildMs)} ms); heap for the rules and the index: ${local.gcExposed ? `${local.heapMiB} MiB` : `~${local.heapMiB} MiB (run with node --expose-gc for an exact figure)`}`);
  console.log(`over HTTP on ${http.database} (${SETTINGS.rounds} rounds x ${SETTINGS.durationSeconds} s, ${SETTINGS.connections} connections, GET ${ROUTE} with an API key; bare: GET /):`);
  for (const r of http.rows) console.log(`  ${r.name.padEnd(24)} ${fmt(r.reqPerSec).padStart(8)} req/s  p99 ${r.p99Ms} ms  CPU ${r.cpuUsPerRequest?.toFixed(1) ?? '?'} µs/req${r.gcUsPerRequest === null ? '' : ` (GC ${r.gcUsPerRequest.toFixed(1)})`}  RSS ${r.rssMiB ?? '?'} MiB${r.heapUsedMiB === null ? '' : `  heap used ${r.heapUsedMiB} MiB`}${r.non2xx ? `  non-2xx ${r.non2xx}` : ''}`);
  console.log(`  kernel/bare: ${ratioEmpty.toFixed(3)} with no rules, ${ratioLoaded.toFixed(3)} with ${fmt(local.rules)} rules (${(ratioChange * 100).toFixed(1)} %; ${Math.abs(ratioChange) <= RATIO_TOLERANCE ? 'within' : 'OUTSIDE'} the ${RATIO_TOLERANCE * 100} % target)`);
  const pairedChange = http.pairedThroughput - 1;
  console.log(`  paired by round (median of the rounds' with/without ratios): throughput ${(pairedChange * 100).toFixed(1)} % (${Math.abs(pairedChange) <= RATIO_TOLERANCE ? 'within' : 'OUTSIDE'} the ${RATIO_TOLERANCE * 100} % target), server CPU per request ${((http.pairedCpu - 1) * 100).toFixed(1)} %`);
  if (empty.cpuUsPerRequest !== null && loaded.cpuUsPerRequest !== null) {
    const cpuChange = loaded.cpuUsPerRequest / empty.cpuUsPerRequest - 1;
    console.log(`  server CPU per request (median of the rounds): ${empty.cpuUsPerRequest.toFixed(1)} µs with no rules, ${loaded.cpuUsPerRequest.toFixed(1)} µs with ${fmt(local.rules)} rules (${(cpuChange * 100).toFixed(1)} %); of which GC ${empty.gcUsPerRequest?.toFixed(1) ?? '?'} vs ${loaded.gcUsPerRequest?.toFixed(1) ?? '?'} µs`);
  }
  console.log(`  rule change applied (write answered after the full reload): median ${fmt(changeMs)} ms of ${http.changeMs.map((m) => fmt(m)).join(', ')} (${changeMs < RELOAD_TARGET_MS ? 'under' : 'OVER'} the ${RELOAD_TARGET_MS} ms target); the kernel's last reload took ${http.reloadMs ?? '?'} ms; bulk imports of 10,000: ${http.importMs.map((m) => fmt(m)).join(', ')} ms`);
  console.log(`  memory: RSS ${loaded.rssMiB ?? '?'} MiB with the rules vs ${empty.rssMiB ?? '?'} MiB without (RSS keeps the high-water mark of the imports); V8 heap in use ${loaded.heapUsedMiB ?? '?'} vs ${empty.heapUsedMiB ?? '?'} MiB`);

  const resultsDir = path.join(root, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, 'blocklist.json');
  const { bodies: _bodies, ...figures } = local;
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: cpus().length, settings: SETTINGS, inProcess: figures, http: { ...http, ratioEmpty, ratioLoaded, ratioChange } }, null, 2)}\n`);
  console.log(`written to ${path.relative(process.cwd(), file)} (${Math.round((Date.now() - started) / 1000)} s)`);
  return 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stopAll().then(() => process.exit(130));
  });
}

process.exitCode = await main().catch(async (err: unknown) => {
  console.error('bench failed:', err instanceof Error ? `${err.message}${err.cause ? ` (${String(err.cause)})` : ''}` : err);
  await stopAll();
  return 1;
});
