import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon, { type Result } from 'autocannon';
import { generateApiKey } from '../plugins/api-keys/key-format.js';
import { loadEnv } from '../src/env.js';
import { EVALUATE_BODY, measureInProcess, seedFlags, type InProcessFigures } from './flags.js';
import { median, rssOf, sleep, startServer, StartError, status, intFromEnv, stopAll } from './servers.js';

// `npm run bench`: bare Fastify (one trivial route, logger off) against the full kernel started
// through its real entry point (every pack, request logging on at LOG_LEVEL=info to /dev/null,
// PGlite in a temporary DATA_DIR, or DATABASE_URL when set). Both run on loopback and are driven
// by autocannon alternately, round after round, so neither gets a warmer machine. Prints req/s
// and p99 (median of the rounds) and the kernel/bare ratio; writes bench/results/latest.json.

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

interface Target {
  server: 'bare' | 'kernel';
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

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

async function main(): Promise<number> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'vk-bench-'));
  const started = Date.now();
  // The rate limiter runs on every request (its cost is part of the kernel's), but with a default
  // no bench run reaches: one client sending thousands of requests a second would otherwise be
  // measuring 429s.
  const kernelEnv = { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', DATA_DIR: dataDir, NODE_ENV: 'production', ADMIN_API_KEY: BENCH_KEY, RATE_LIMIT_DEFAULT_MAX: '1000000000' };
  try {
    // In-process first, while the machine is otherwise idle (no servers yet).
    console.error(`flag evaluation in-process (${SETTINGS.rounds} x ${SETTINGS.durationSeconds} s each) ...`);
    const inProcessRounds: InProcessFigures[] = [];
    for (let round = 0; round < SETTINGS.rounds; round++) inProcessRounds.push(measureInProcess(SETTINGS.durationSeconds));
    const flagEvaluation = {
      flags: 100,
      evaluationsPerSecond: median(inProcessRounds.map((r) => r.engine)),
      meteredEvaluationsPerSecond: median(inProcessRounds.map((r) => r.metered)),
      singleFlagCallsPerSecond: median(inProcessRounds.map((r) => r.singleMetered)),
      rounds: inProcessRounds,
    };

    // What the kernel will run with (defaults plus anything set for this run, e.g. TRACE_SAMPLE_RATE).
    const effective = loadEnv({ ...process.env, ...kernelEnv });
    const kernelSettings = `LOG_LEVEL=${effective.LOG_LEVEL} to /dev/null, TRACE_SAMPLE_RATE=${effective.TRACE_SAMPLE_RATE}, RUN_JOBS=${effective.RUN_JOBS}`;
    const database = process.env.DATABASE_URL ? 'postgres (DATABASE_URL)' : 'pglite (temporary DATA_DIR)';
    console.error(`starting bare Fastify and the kernel (${database}) ...`);
    const [bare, kernel] = await Promise.all([
      startServer('bare', 'bench/bare-server.ts', {}, BARE_ROUTE),
      startServer('kernel', 'src/server.ts', kernelEnv, KERNEL_ROUTES.live),
    ]);
    // As a load balancer would: no traffic before readiness (under-pressure may still be shedding
    // load for a moment after a slow start).
    const readyBy = Date.now() + 30_000;
    while ((await status(`${kernel.origin}/ready`)) !== 200) {
      if (Date.now() > readyBy) throw new StartError('kernel did not become ready (GET /ready 200) within 30 s');
      await sleep(200);
    }
    for (const route of Object.values(KERNEL_ROUTES)) {
      const code = await status(`${kernel.origin}${route}`, AUTH_HEADERS);
      if (code !== 200) throw new StartError(`kernel answered ${code ?? 'nothing'} on GET ${route}; the bench needs 200 (set BENCH_MEMORY_ROUTE?)`);
    }
    await seedFlags(kernel.origin, AUTH_HEADERS);
    const flagHeaders = { ...AUTH_HEADERS, 'content-type': 'application/json' };
    const flagCheck = await fetch(`${kernel.origin}${FLAGS_ROUTE}`, { method: 'POST', headers: flagHeaders, body: EVALUATE_BODY });
    const flagAnswer = (await flagCheck.json()) as { flags?: unknown[] };
    if (flagCheck.status !== 200 || flagAnswer.flags?.length !== 100) throw new StartError(`kernel answered ${flagCheck.status} on POST ${FLAGS_ROUTE} (expected 200 with 100 flags)`);

    const targets: Target[] = [
      { server: 'bare', route: BARE_ROUTE },
      ...CALIBRATION_US.map((us): Target => ({ server: 'bare', route: `/work?us=${us}` })),
      { server: 'kernel', route: KERNEL_ROUTES.live },
      { server: 'kernel', route: KERNEL_ROUTES.memory, headers: AUTH_HEADERS },
      { server: 'kernel', route: ONE_FLAG_ROUTE, headers: AUTH_HEADERS },
      { server: 'kernel', route: FLAGS_ROUTE, headers: flagHeaders, method: 'POST', body: EVALUATE_BODY },
    ];
    const urlOf = (t: Target) => `${(t.server === 'bare' ? bare : kernel).origin}${t.route}`;
    const key = (t: Target) => `${t.server} ${t.method ?? 'GET'} ${t.route}`;

    console.error(`warming up (${SETTINGS.warmupSeconds} s each) ...`);
    for (const t of targets) await drive(urlOf(t), SETTINGS.warmupSeconds, t);

    const runs = new Map<string, Result[]>(targets.map((t) => [key(t), []]));
    const cpuPerRequest = new Map<string, number[]>(targets.map((t) => [key(t), []]));
    const pidOf = (t: Target) => (t.server === 'bare' ? bare : kernel).child.pid;
    for (let round = 0; round < SETTINGS.rounds; round++) {
      // Rotate the order each round so no target always runs first or last.
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const t of order) {
        const cpuBefore = cpuMsOf(pidOf(t));
        const result = await drive(urlOf(t), SETTINGS.durationSeconds, t);
        const cpuAfter = cpuMsOf(pidOf(t));
        runs.get(key(t))!.push(result);
        if (cpuBefore !== null && cpuAfter !== null && result.requests.total > 0) {
          cpuPerRequest.get(key(t))!.push(((cpuAfter - cpuBefore) * 1000) / result.requests.total);
        }
        console.error(
          `round ${round + 1}/${SETTINGS.rounds} ${key(t).padEnd(38)} ${fmt(result.requests.average).padStart(8)} req/s  p99 ${result.latency.p99} ms` +
            (result.non2xx || result.errors ? `  non-2xx ${result.non2xx} errors ${result.errors}` : ''),
        );
      }
    }

    const kernelMemory = rssOf(kernel.child.pid);
    const bareMemory = rssOf(bare.child.pid);
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
        ['target', 'route', 'req/s (median)', 'p99 ms', 'server CPU µs/req', 'bytes/resp', 'non-2xx', 'kernel/bare req/s', 'kernel/bare p99'],
        ...withRatios.map((s) => [
          s.server,
          `${s.method} ${s.route}${s.authenticated ? ' (API key)' : ''}`,
          fmt(s.reqPerSec),
          fmt(s.p99Ms),
          s.cpuUsPerRequest === null ? '-' : s.cpuUsPerRequest.toFixed(1),
          fmt(s.bytesPerResponse),
          fmt(s.rounds.reduce((n, r) => n + r.non2xx + r.errors, 0)),
          s.ratio === null ? '-' : s.ratio.toFixed(2),
          s.p99Ratio === null ? '-' : s.p99Ratio.toFixed(2),
        ]),
      ]),
    );
    console.log('');
    console.log(
      `flag evaluation in-process (100 flags with rules, one context): ${fmt(flagEvaluation.evaluationsPerSecond)} evaluations/s (engine), ` +
        `${fmt(flagEvaluation.meteredEvaluationsPerSecond)}/s counted in valhalla_flag_evaluations_total, ${fmt(flagEvaluation.singleFlagCallsPerSecond)} app.flags.evaluate() calls/s`,
    );
    if (kernelMemory) console.log(`kernel RSS after the run: ${kernelMemory.rssMiB} MiB (peak ${kernelMemory.peakRssMiB} MiB); bare: ${bareMemory?.rssMiB ?? '?'} MiB`);
    for (const e of exits) console.log(`${e.name} server stopped with exit code ${e.code}`);

    const calibration = withRatios.filter((r) => r.server === 'bare' && r.ratio !== null);
    if (calibration.length) {
      console.log(`calibration: bare Fastify doing N µs of synchronous work per request runs at ${calibration.map((r) => `${r.route.replace('/work?us=', '')} µs: ${r.ratio!.toFixed(2)}`).join(', ')} of bare`);
    }
    const kernelRow = (route: string) => withRatios.find((r) => r.server === 'kernel' && r.route === route)!;
    for (const authenticated of [kernelRow(KERNEL_ROUTES.memory), kernelRow(ONE_FLAG_ROUTE)]) {
      if (authenticated.ratio === null) continue;
      console.log(
        `kernel/bare on GET ${authenticated.route} with an API key: ${authenticated.ratio.toFixed(2)} (${authenticated.ratio >= AUTHENTICATED_FLOOR ? 'at or above' : 'BELOW'} the target ${AUTHENTICATED_FLOOR})`,
      );
    }
    const live = kernelRow(KERNEL_ROUTES.live);
    if (live.ratio !== null && live.ratio < LIVE_FLOOR) {
      console.log(`BELOW FLOOR: kernel/bare throughput on GET ${live.route} is ${live.ratio.toFixed(2)} < ${LIVE_FLOOR} (aim ${LIVE_AIM})`);
    } else if (live.ratio !== null && live.ratio < LIVE_AIM) {
      console.log(`kernel/bare on GET ${live.route}: ${live.ratio.toFixed(2)}, above the floor ${LIVE_FLOOR}, below the aim ${LIVE_AIM}`);
    } else if (live.ratio !== null) {
      console.log(`kernel/bare on GET ${live.route}: ${live.ratio.toFixed(2)}, at or above the aim ${LIVE_AIM}`);
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
          kernelMemory,
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
    rmSync(dataDir, { recursive: true, force: true });
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stopAll().then(() => process.exit(130));
  });
}

process.exitCode = await main();
