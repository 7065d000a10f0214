import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon, { type Result } from 'autocannon';
import postgres from 'postgres';
import { generateApiKey } from '../plugins/api-keys/key-format.js';
import { loadEnv } from '../src/env.js';
import { EVALUATE_BODY, measureInProcess, seedFlags, type InProcessFigures } from './flags.js';
import { median, rssOf, sleep, startServer, StartError, status, intFromEnv, stopAll, type RunningServer } from './servers.js';

// `npm run bench`: bare Fastify (one trivial route, logger off) against the full kernel started
// through its real entry point (every pack, request logging on at LOG_LEVEL=info to /dev/null).
// The kernel runs on PGlite in a temporary DATA_DIR and, when BENCH_DATABASE_URL (or
// DATABASE_URL) names a PostgreSQL server, a second kernel runs on a fresh database created there
// for the run (dropped afterwards). All run on loopback and are driven by autocannon alternately,
// round after round, so none gets a warmer machine. Prints req/s and p99 (median of the rounds)
// and the kernel/bare ratios; writes bench/results/latest.json.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** What is measured and how, in one place. */
const SETTINGS = {
  rounds: intFromEnv('BENCH_ROUNDS', 3),
  durationSeconds: intFromEnv('BENCH_DURATION', 5),
  warmupSeconds: intFromEnv('BENCH_WARMUP', 2),
  connections: intFromEnv('BENCH_CONNECTIONS', 50),
  pipelining: 1,
};
/** The bare baseline's one route. */
const BARE_ROUTE = '/';
/**
 * Calibration targets on the bare server: the same answer after N µs of synchronous work. On a
 * small VM, loopback syscalls get dearer as a server gets slower (the client idles and must be
 * woken), so these rows show what N µs of per-request JavaScript costs in throughput here.
 */
const CALIBRATION_US = [5, 10];
/**
 * The kernel routes compared with it: liveness (public), and an authenticated `/system/*` GET
 * answered from memory, through authentication, rate limiting and the shield (no database).
 */
const KERNEL_ROUTES = {
  live: '/live',
  memory: process.env.BENCH_MEMORY_ROUTE ?? '/system/info',
};
/** Feature flags over HTTP: all 100 bench flags (bench/flags.ts) for one context, from memory. */
const FLAGS_ROUTE = '/system/flags/evaluate';
/** One flag for one subject: the small authenticated GET an application sends most often. */
const ONE_FLAG_ROUTE = '/system/flags/bench.flag-001/evaluate?subject=user-12345&attr.country=NZ&attr.appVersion=2.3.1';
const LIVE_FLOOR = 0.6;
const LIVE_AIM = 0.75;
/** Issue 3's target for the authenticated route. */
const AUTHENTICATED_FLOOR = 0.5;
/** The kernel is started with this admin key; the authenticated target sends it. */
const BENCH_KEY = generateApiKey().token;
const AUTH_HEADERS = { authorization: `Bearer ${BENCH_KEY}` };

/**
 * `kernel` (PGlite) or `kernel-pg` (PostgreSQL); `bare` for the baseline; `bare-logged`, the same
 * bare server with the kernel's request logging (a calibration row: what logging alone leaves).
 */
type ServerName = 'bare' | 'bare-logged' | 'kernel' | 'kernel-pg';

interface Target {
  server: ServerName;
  route: string;
  headers?: Record<string, string>;
  method?: 'GET' | 'POST';
  body?: string;
}

function drive(url: string, seconds: number, t: Pick<Target, 'headers' | 'method' | 'body'> = {}): Promise<Result> {
  return Promise.resolve(
    autocannon({ url, headers: t.headers ?? {}, method: t.method ?? 'GET', body: t.body, connections: SETTINGS.connections, pipelining: SETTINGS.pipelining, duration: seconds, timeout: 10 }),
  );
}

/**
 * CPU time (user + system) a process has used, in ms, from /proc/<pid>/stat (clock ticks at the
 * usual 100 Hz). CPU per request is steadier than req/s on a shared VM; null off Linux.
 */
function cpuMsOf(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

function commit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/** The PostgreSQL server the second kernel runs on, if any. */
const PG_SERVER_URL = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL || '';
/** `BENCH_DATABASES=pglite`, `postgres` or `pglite,postgres` (the default: both when a server is named). */
const DATABASES = (process.env.BENCH_DATABASES ?? (PG_SERVER_URL ? 'pglite,postgres' : 'pglite')).split(',').map((d) => d.trim()).filter(Boolean);

interface FreshDatabase {
  url: string;
  /**
   * CPU ms (user + system, from /proc) of the PostgreSQL processes working for this database: its
   * backends and autovacuum workers (the server's shared WAL writer, checkpointer and background
   * writer are left out: other databases on the server use them too). Keyed by pid, so a caller
   * can subtract two readings; a backend that ended in between is missed. Null when the server is
   * not on this machine (or not Linux).
   */
  cpuByPid(): Promise<Map<number, number> | null>;
  drop: () => Promise<void>;
}

/** A fresh database on `server` for this run, and how to drop it. */
async function freshPostgresDatabase(server: string): Promise<FreshDatabase> {
  const name = `vk_bench_${process.pid}_${Date.now().toString(36)}`;
  const admin = postgres(server, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const u = new URL(server);
  u.pathname = `/${name}`;
  const local = ['127.0.0.1', 'localhost', '[::1]', ''].includes(u.hostname);
  return {
    url: u.toString(),
    async cpuByPid() {
      if (!local) return null;
      const rows = await admin<{ pid: number }[]>`
        select pid from pg_stat_activity
        where datname = ${name}`;
      const out = new Map<number, number>();
      for (const { pid } of rows) {
        const ms = cpuMsOf(pid);
        if (ms !== null) out.set(pid, ms);
      }
      return out.size ? out : null;
    },
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`).catch((err: unknown) => console.error(`could not drop database ${name}: ${String(err)}`));
      await admin.end({ timeout: 5 });
    },
  };
}

/**
 * `BENCH_KERNEL_NODE_ARGS`: node options for the kernels only, space-separated, e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` (a profile per kernel, written when it stops).
 */
const KERNEL_NODE_ARGS = (process.env.BENCH_KERNEL_NODE_ARGS ?? '').split(' ').filter(Boolean);

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

async function main(): Promise<number> {
  for (const d of DATABASES) if (d !== 'pglite' && d !== 'postgres') throw new StartError(`BENCH_DATABASES: unknown database '${d}' (pglite, postgres)`);
  if (DATABASES.includes('postgres') && !PG_SERVER_URL) throw new StartError('BENCH_DATABASES=postgres needs BENCH_DATABASE_URL (or DATABASE_URL): a server where the bench may create a database');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'vk-bench-'));
  let fresh: FreshDatabase | undefined;
  const started = Date.now();
  // The rate limiter runs on every request (its cost is part of the kernel's), but with a default
  // no bench run reaches: one client sending thousands of requests a second would otherwise be
  // measuring 429s.
  const kernelEnv: Record<string, string> = {
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    NODE_ENV: 'production',
    ADMIN_API_KEY: BENCH_KEY,
    RATE_LIMIT_DEFAULT_MAX: '1000000000',
  };
  try {
    // In-process first, while the machine is otherwise idle (no servers yet).
    const inProcessRounds: InProcessFigures[] = [];
    if (process.env.BENCH_IN_PROCESS !== '0') {
      console.error(`flag evaluation in-process (${SETTINGS.rounds} x ${SETTINGS.durationSeconds} s each) ...`);
      for (let round = 0; round < SETTINGS.rounds; round++) inProcessRounds.push(measureInProcess(SETTINGS.durationSeconds));
    }
    const flagEvaluation = inProcessRounds.length
      ? {
          flags: 100,
          evaluationsPerSecond: median(inProcessRounds.map((r) => r.engine)),
          meteredEvaluationsPerSecond: median(inProcessRounds.map((r) => r.metered)),
          singleFlagCallsPerSecond: median(inProcessRounds.map((r) => r.singleMetered)),
          rounds: inProcessRounds,
        }
      : null;

    // What the kernel will run with (defaults plus anything set for this run, e.g. TRACE_SAMPLE_RATE).
    const effective = loadEnv({ ...process.env, ...kernelEnv });
    const kernelSettings = `LOG_LEVEL=${effective.LOG_LEVEL} to /dev/null, TRACE_SAMPLE_RATE=${effective.TRACE_SAMPLE_RATE}, RUN_JOBS=${effective.RUN_JOBS}`;
    const kernelEnvs: Array<{ name: ServerName; database: string; env: Record<string, string> }> = [];
    if (DATABASES.includes('pglite')) kernelEnvs.push({ name: 'kernel', database: 'pglite (temporary DATA_DIR)', env: { ...kernelEnv, DATABASE_URL: '', DATA_DIR: dataDir } });
    if (DATABASES.includes('postgres')) {
      fresh = await freshPostgresDatabase(PG_SERVER_URL);
      kernelEnvs.push({ name: 'kernel-pg', database: `postgres (fresh database on ${new URL(PG_SERVER_URL).host})`, env: { ...kernelEnv, DATABASE_URL: fresh.url } });
    }
    const database = kernelEnvs.map((k) => `${k.name}: ${k.database}`).join('; ');
    console.error(`starting bare Fastify and ${kernelEnvs.map((k) => `${k.name} (${k.database})`).join(' and ')} ...`);
    const calibrate = process.env.BENCH_CALIBRATION !== '0';
    const [bare, bareLogged, ...kernelServers] = await Promise.all([
      startServer('bare', 'bench/bare-server.ts', {}, BARE_ROUTE),
      calibrate ? startServer('bare-logged', 'bench/bare-server.ts', { BARE_REQUEST_LOGGING: 'kernel', LOG_LEVEL: kernelEnv.LOG_LEVEL! }, BARE_ROUTE) : undefined,
      // A first boot on PGlite (initdb and every migration) takes 10-20 s alone and a few times
      // that on a loaded machine.
      ...kernelEnvs.map((k) => startServer(k.name, 'src/server.ts', k.env, KERNEL_ROUTES.live, { timeoutMs: 300_000, nodeArgs: KERNEL_NODE_ARGS })),
    ]);
    const servers = new Map<ServerName, RunningServer>([['bare', bare!], ...kernelEnvs.map((k, i): [ServerName, RunningServer] => [k.name, kernelServers[i]!])]);
    if (bareLogged) servers.set('bare-logged', bareLogged);
    const flagHeaders = { ...AUTH_HEADERS, 'content-type': 'application/json' };
    for (const k of kernelEnvs) {
      const kernel = servers.get(k.name)!;
      // As a load balancer would: no traffic before readiness (under-pressure may still be shedding
      // load for a moment after a slow start).
      const readyBy = Date.now() + 30_000;
      while ((await status(`${kernel.origin}/ready`)) !== 200) {
        if (Date.now() > readyBy) throw new StartError(`${k.name} did not become ready (GET /ready 200) within 30 s`);
        await sleep(200);
      }
      for (const route of Object.values(KERNEL_ROUTES)) {
        const code = await status(`${kernel.origin}${route}`, AUTH_HEADERS);
        if (code !== 200) throw new StartError(`${k.name} answered ${code ?? 'nothing'} on GET ${route}; the bench needs 200 (set BENCH_MEMORY_ROUTE?)`);
      }
      await seedFlags(kernel.origin, AUTH_HEADERS);
      const flagCheck = await fetch(`${kernel.origin}${FLAGS_ROUTE}`, { method: 'POST', headers: flagHeaders, body: EVALUATE_BODY });
      const flagAnswer = (await flagCheck.json()) as { flags?: unknown[] };
      if (flagCheck.status !== 200 || flagAnswer.flags?.length !== 100) throw new StartError(`${k.name} answered ${flagCheck.status} on POST ${FLAGS_ROUTE} (expected 200 with 100 flags)`);
    }

    // BENCH_KERNEL_ROUTES=live,info,flag,flags picks the kernel targets (all by default).
    const kernelRouteNames = (process.env.BENCH_KERNEL_ROUTES ?? 'live,info,flag,flags').split(',').map((r) => r.trim());
    const kernelTargets = (server: ServerName): Target[] =>
      ([
        kernelRouteNames.includes('live') && { server, route: KERNEL_ROUTES.live },
        kernelRouteNames.includes('info') && { server, route: KERNEL_ROUTES.memory, headers: AUTH_HEADERS },
        kernelRouteNames.includes('flag') && { server, route: ONE_FLAG_ROUTE, headers: AUTH_HEADERS },
        kernelRouteNames.includes('flags') && { server, route: FLAGS_ROUTE, headers: flagHeaders, method: 'POST' as const, body: EVALUATE_BODY },
      ] as Array<Target | false>).filter((t): t is Target => t !== false);
    const targets: Target[] = [
      { server: 'bare', route: BARE_ROUTE },
      ...(calibrate ? [...CALIBRATION_US.map((us): Target => ({ server: 'bare', route: `/work?us=${us}` })), { server: 'bare-logged' as const, route: BARE_ROUTE }] : []),
      ...kernelEnvs.flatMap((k) => kernelTargets(k.name)),
    ];
    const urlOf = (t: Target) => `${servers.get(t.server)!.origin}${t.route}`;
    const key = (t: Target) => `${t.server} ${t.method ?? 'GET'} ${t.route}`;

    console.error(`warming up (${SETTINGS.warmupSeconds} s each) ...`);
    for (const t of targets) await drive(urlOf(t), SETTINGS.warmupSeconds, t);

    const runs = new Map<string, Result[]>(targets.map((t) => [key(t), []]));
    const cpuPerRequest = new Map<string, number[]>(targets.map((t) => [key(t), []]));
    const dbCpuPerRequest = new Map<string, number[]>(targets.map((t) => [key(t), []]));
    const pidOf = (t: Target) => servers.get(t.server)!.child.pid;
    for (let round = 0; round < SETTINGS.rounds; round++) {
      // Rotate the order each round so no target always runs first or last.
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const t of order) {
        // The database's CPU is read around every target: work the kernel-pg requests leave to
        // PostgreSQL (span inserts, vacuum) shows there, and can spill into the next target.
        const dbBefore = fresh ? await fresh.cpuByPid() : null;
        const cpuBefore = cpuMsOf(pidOf(t));
        const result = await drive(urlOf(t), SETTINGS.durationSeconds, t);
        const cpuAfter = cpuMsOf(pidOf(t));
        const dbAfter = fresh ? await fresh.cpuByPid() : null;
        runs.get(key(t))!.push(result);
        if (cpuBefore !== null && cpuAfter !== null && result.requests.total > 0) {
          cpuPerRequest.get(key(t))!.push(((cpuAfter - cpuBefore) * 1000) / result.requests.total);
        }
        if (dbBefore && dbAfter && result.requests.total > 0) {
          let ms = 0;
          for (const [pid, after] of dbAfter) ms += after - (dbBefore.get(pid) ?? 0);
          dbCpuPerRequest.get(key(t))!.push((ms * 1000) / result.requests.total);
        }
        console.error(
          `round ${round + 1}/${SETTINGS.rounds} ${key(t).slice(0, 60).padEnd(60)} ${fmt(result.requests.average).padStart(8)} req/s  p99 ${result.latency.p99} ms` +
            (result.non2xx || result.errors ? `  non-2xx ${result.non2xx} errors ${result.errors}` : ''),
        );
      }
    }

    const kernelMemories = kernelEnvs.map((k) => ({ server: k.name, ...rssOf(servers.get(k.name)!.child.pid) }));
    const bareMemory = rssOf(bare!.child.pid);
    const summary = targets.map((t) => {
      const results = runs.get(key(t))!;
      return {
        server: t.server,
        route: t.route,
        method: t.method ?? 'GET',
        authenticated: t.headers !== undefined,
        reqPerSec: median(results.map((r) => r.requests.average)),
        p99Ms: median(results.map((r) => r.latency.p99)),
        cpuUsPerRequest: cpuPerRequest.get(key(t))!.length ? Math.round(median(cpuPerRequest.get(key(t))!) * 10) / 10 : null,
        databaseCpuUsPerRequest: dbCpuPerRequest.get(key(t))!.length ? Math.round(median(dbCpuPerRequest.get(key(t))!) * 10) / 10 : null,
        bytesPerResponse: Math.round(results.reduce((n, r) => n + r.throughput.total, 0) / Math.max(1, results.reduce((n, r) => n + r.requests.total, 0))),
        rounds: results.map((r) => ({ reqPerSec: r.requests.average, p50Ms: r.latency.p50, p99Ms: r.latency.p99, requests: r.requests.total, non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts })),
      };
    });
    const bareSummary = summary[0]!;
    const withRatios = summary.map((s) => ({
      ...s,
      ratio: s !== bareSummary ? Math.round((s.reqPerSec / bareSummary.reqPerSec) * 100) / 100 : null,
      p99Ratio: s !== bareSummary && bareSummary.p99Ms > 0 ? Math.round((s.p99Ms / bareSummary.p99Ms) * 100) / 100 : null,
    }));
    const exits = await stopAll();

    console.log('');
    console.log(
      `bench: ${SETTINGS.rounds} rounds x ${SETTINGS.durationSeconds} s per target, ${SETTINGS.connections} connections, pipelining ${SETTINGS.pipelining}; ` +
        `node ${process.version}, ${cpus().length} CPUs; kernel on ${database}, ${kernelSettings}`,
    );
    console.log('');
    console.log(
      table([
        ['target', 'route', 'req/s (median)', 'p99 ms', 'server CPU µs/req', 'PostgreSQL CPU µs/req', 'bytes/resp', 'non-2xx', 'kernel/bare req/s', 'kernel/bare p99'],
        ...withRatios.map((s) => [
          s.server,
          `${s.method} ${s.route.length > 40 ? s.route.replace(/\?.*/, '?…') : s.route}${s.authenticated ? ' (API key)' : ''}`,
          fmt(s.reqPerSec),
          fmt(s.p99Ms),
          s.cpuUsPerRequest === null ? '-' : s.cpuUsPerRequest.toFixed(1),
          s.databaseCpuUsPerRequest === null ? '-' : s.databaseCpuUsPerRequest.toFixed(1),
          fmt(s.bytesPerResponse),
          fmt(s.rounds.reduce((n, r) => n + r.non2xx + r.errors, 0)),
          s.ratio === null ? '-' : s.ratio.toFixed(2),
          s.p99Ratio === null ? '-' : s.p99Ratio.toFixed(2),
        ]),
      ]),
    );
    console.log('');
    if (flagEvaluation) {
      console.log(
        `flag evaluation in-process (100 flags with rules, one context): ${fmt(flagEvaluation.evaluationsPerSecond)} evaluations/s (engine), ` +
          `${fmt(flagEvaluation.meteredEvaluationsPerSecond)}/s counted in valhalla_flag_evaluations_total, ${fmt(flagEvaluation.singleFlagCallsPerSecond)} app.flags.evaluate() calls/s`,
      );
    }
    for (const m of kernelMemories) console.log(`${m.server} RSS after the run: ${m.rssMiB ?? '?'} MiB (peak ${m.peakRssMiB ?? '?'} MiB)`);
    console.log(`bare RSS after the run: ${bareMemory?.rssMiB ?? '?'} MiB`);
    for (const e of exits) console.log(`${e.name} server stopped with exit code ${e.code}`);

    const calibration = withRatios.filter((r) => r.server === 'bare' && r.ratio !== null);
    if (calibration.length) {
      console.log(`calibration: bare Fastify doing N µs of synchronous work per request runs at ${calibration.map((r) => `${r.route.replace('/work?us=', '')} µs: ${r.ratio!.toFixed(2)}`).join(', ')} of bare`);
    }
    const logged = withRatios.find((r) => r.server === 'bare-logged');
    if (logged?.ratio != null) {
      console.log(`calibration: bare Fastify with the kernel's request logging (pino at ${kernelEnv.LOG_LEVEL}, one access line per request, to /dev/null) runs at ${logged.ratio.toFixed(2)} of bare, the ceiling of every kernel/bare ratio above`);
    }
    for (const k of kernelEnvs) {
      const kernelRow = (route: string) => withRatios.find((r) => r.server === k.name && r.route === route);
      for (const authenticated of [kernelRow(KERNEL_ROUTES.memory), kernelRow(ONE_FLAG_ROUTE)]) {
        if (!authenticated || authenticated.ratio === null) continue;
        console.log(
          `${k.name}/bare on GET ${authenticated.route} with an API key: ${authenticated.ratio.toFixed(2)} (${authenticated.ratio >= AUTHENTICATED_FLOOR ? 'at or above' : 'BELOW'} the target ${AUTHENTICATED_FLOOR})`,
        );
      }
      const live = kernelRow(KERNEL_ROUTES.live);
      if (!live || live.ratio === null) continue;
      if (live.ratio < LIVE_FLOOR) {
        console.log(`BELOW FLOOR: ${k.name}/bare throughput on GET ${live.route} is ${live.ratio.toFixed(2)} < ${LIVE_FLOOR} (aim ${LIVE_AIM})`);
      } else if (live.ratio < LIVE_AIM) {
        console.log(`${k.name}/bare on GET ${live.route}: ${live.ratio.toFixed(2)}, above the floor ${LIVE_FLOOR}, below the aim ${LIVE_AIM}`);
      } else {
        console.log(`${k.name}/bare on GET ${live.route}: ${live.ratio.toFixed(2)}, at or above the aim ${LIVE_AIM}`);
      }
    }

    const resultsDir = path.join(root, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const file = path.join(resultsDir, 'latest.json');
    writeFileSync(
      file,
      `${JSON.stringify(
        {
          at: new Date().toISOString(),
          commit: commit(),
          node: process.version,
          cpus: cpus().length,
          database,
          settings: { ...SETTINGS, bareRoute: BARE_ROUTE, kernelRoutes: KERNEL_ROUTES, kernel: kernelSettings },
          results: withRatios,
          flagEvaluation,
          kernelMemory: kernelMemories,
          bareMemory,
          floor: LIVE_FLOOR,
          aim: LIVE_AIM,
          seconds: Math.round((Date.now() - started) / 1000),
        },
        null,
        2,
      )}\n`,
    );
    console.log(`written to ${path.relative(process.cwd(), file)} (${Math.round((Date.now() - started) / 1000)} s)`);
    return 0;
  } catch (err) {
    console.error(err instanceof StartError ? `bench failed: ${err.message}` : err);
    return 1;
  } finally {
    await stopAll();
    await fresh?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stopAll().then(() => process.exit(130));
  });
}

process.exitCode = await main();
