import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { benchRoot, freePort, intFromEnv, median, sleep, status } from './servers.js';

// `npm run bench:memory`: the memory of the embedded default, measured the way a user meets it:
// `npm start` (scripts/run.mjs src/server, the compiled kernel) with no DATABASE_URL and a fresh
// DATA_DIR, so PGlite creates its cluster and applies every migration (the first boot), then again
// on the same DATA_DIR (the second boot). /proc/<pid>/status is sampled every 100 ms from the
// spawn until GET /ready answers 200 and for BENCH_MEMORY_SETTLE seconds after: VmRSS (resident
// now) and VmHWM (the peak so far). Each sample is tagged with the start-up phase the kernel last
// logged (opening the database, applying migrations, loading packs, listening), so the peak can
// be put on a phase. The RSS of the kernel's child processes is sampled too (the peak "with
// children" is what the machine must have). Linux only.

const SETTINGS = {
  runs: intFromEnv('BENCH_MEMORY_RUNS', 3),
  settleSeconds: intFromEnv('BENCH_MEMORY_SETTLE', 30),
  sampleMs: 100,
  readyTimeoutMs: 300_000,
};
/** Node options for the kernel (e.g. `--max-semi-space-size=4`), space-separated; package.json's `start` passes none. */
const NODE_ARGS = (process.env.BENCH_MEMORY_NODE_ARGS ?? '').split(' ').filter(Boolean);

interface Sample {
  ms: number;
  rssMiB: number;
  hwmMiB: number;
  /** RSS of the kernel and every process under it (a first boot creates its cluster in a child). */
  treeMiB: number;
  phase: string;
}

interface Boot {
  readyMs: number;
  /** VmHWM at the end: the highest RSS the process ever had. */
  peakMiB: number;
  /** The highest sampled RSS of the kernel and its child processes together (the machine's view). */
  treePeakMiB: number;
  /** The phase the highest sampled RSS fell in. */
  peakPhase: string;
  /** Highest sampled RSS per phase. */
  phases: Record<string, number>;
  readyRssMiB: number;
  /** RSS at the end of the settle period. */
  settledMiB: number;
}

const kib = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
const mib = (k: number) => Math.round(k / 102.4) / 10;

/** The phases the kernel logs at start (src/app.ts), by their message. */
const PHASES: Array<[RegExp, string]> = [
  [/^opening the database/, 'database'],
  [/^applying migrations/, 'migrations'],
  [/^loading packs/, 'packs'],
  [/^Server listening/, 'listening'],
];

/** Pids of `pid`'s descendants, from /proc/<pid>/task/<tid>/children. */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number) => {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const tid of tids) {
      let children = '';
      try {
        children = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const c of children.split(' ').filter(Boolean).map(Number)) {
        out.push(c);
        visit(c);
      }
    }
  };
  visit(pid);
  return out;
}

const rssKiB = (pid: number): number => {
  try {
    return kib(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS') || 0;
  } catch {
    return 0;
  }
};

/** Compiles dist/ first (scripts/run.mjs compiles when sources changed), so no boot measures tsc. */
function compile(): void {
  const r = spawnSync(process.execPath, ['scripts/run.mjs', 'src/server'], { cwd: benchRoot, env: { ...process.env, PORT: 'not-a-port' }, encoding: 'utf8' });
  if (!/invalid environment variable PORT/.test(r.stderr)) throw new Error(`could not compile the kernel:\n${r.stderr.slice(-2000)}`);
}

async function boot(dataDir: string): Promise<Boot> {
  const port = await freePort();
  const child = spawn(process.execPath, [...NODE_ARGS, 'scripts/run.mjs', 'src/server'], {
    cwd: benchRoot,
    env: { ...process.env, DATABASE_URL: '', DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let phase = 'node';
  let exited = false;
  const errors: string[] = [];
  child.once('exit', () => (exited = true));
  child.stderr.setEncoding('utf8').on('data', (c: string) => errors.push(c));
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const msg = /"msg":"([^"]*)"/.exec(line)?.[1];
      const found = msg && PHASES.find(([re]) => re.test(msg));
      if (found) phase = found[1];
    }
  });
  const started = performance.now();
  const samples: Sample[] = [];
  const sample = () => {
    try {
      const text = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const own = kib(text, 'VmRSS');
      const tree = own + descendants(child.pid!).reduce((n, p) => n + rssKiB(p), 0);
      samples.push({ ms: performance.now() - started, rssMiB: mib(own), hwmMiB: mib(kib(text, 'VmHWM')), treeMiB: mib(tree), phase });
    } catch {
      // gone
    }
  };
  const sampler = setInterval(sample, SETTINGS.sampleMs);
  try {
    let readyMs = NaN;
    while (performance.now() - started < SETTINGS.readyTimeoutMs) {
      if (exited) throw new Error(`the kernel exited during start:\n${errors.join('').slice(-2000)}`);
      if ((await status(`http://127.0.0.1:${port}/ready`)) === 200) {
        readyMs = performance.now() - started;
        break;
      }
      await sleep(SETTINGS.sampleMs);
    }
    if (Number.isNaN(readyMs)) throw new Error('the kernel did not become ready');
    sample();
    const readyRssMiB = samples.at(-1)!.rssMiB;
    phase = 'settling';
    await sleep(SETTINGS.settleSeconds * 1000);
    sample();
    const last = samples.at(-1)!;
    const phases: Record<string, number> = {};
    for (const s of samples) phases[s.phase] = Math.max(phases[s.phase] ?? 0, s.rssMiB);
    const top = samples.reduce((a, b) => (b.rssMiB > a.rssMiB ? b : a));
    const treePeakMiB = Math.max(last.hwmMiB, ...samples.map((x) => x.treeMiB));
    return { readyMs: Math.round(readyMs), peakMiB: last.hwmMiB, treePeakMiB, peakPhase: top.phase, phases, readyRssMiB, settledMiB: last.rssMiB };
  } finally {
    clearInterval(sampler);
    if (!exited) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(15_000).then(() => child.kill('SIGKILL'))]);
    }
  }
}

async function main(): Promise<void> {
  console.error('compiling the kernel (npm start does the same on its first run) ...');
  compile();
  const first: Boot[] = [];
  const second: Boot[] = [];
  for (let run = 0; run < SETTINGS.runs; run++) {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'vk-mem-'));
    try {
      for (const [label, list] of [['first', first], ['second', second]] as const) {
        const b = await boot(dataDir);
        list.push(b);
        console.error(
          `run ${run + 1}/${SETTINGS.runs} ${label} boot: ready in ${(b.readyMs / 1000).toFixed(1)} s, peak ${b.peakMiB} MiB (in ${b.peakPhase}; with child processes ${b.treePeakMiB} MiB), ` +
            `at ready ${b.readyRssMiB} MiB, after ${SETTINGS.settleSeconds} s ${b.settledMiB} MiB; by phase ${JSON.stringify(b.phases)}`,
        );
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  const range = (xs: number[]) => `${fmt(median(xs))} (${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))})`;
  const fmt = (n: number) => (Math.round(n * 10) / 10).toString();
  console.log('');
  console.log(`bench:memory: ${SETTINGS.runs} runs, node ${process.version}${NODE_ARGS.length ? ` ${NODE_ARGS.join(' ')}` : ''}; median (min-max), MiB`);
  for (const [label, list] of [['first boot ', first], ['second boot', second]] as const) {
    console.log(
      `${label}  ready ${range(list.map((b) => b.readyMs / 1000))} s  peak RSS ${range(list.map((b) => b.peakMiB))}  with children ${range(list.map((b) => b.treePeakMiB))}  ` +
        `RSS at ready ${range(list.map((b) => b.readyRssMiB))}  after ${SETTINGS.settleSeconds} s ${range(list.map((b) => b.settledMiB))}`,
    );
  }
  const resultsDir = path.join(benchRoot, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, 'memory.json'), `${JSON.stringify({ at: new Date().toISOString(), node: process.version, nodeArgs: NODE_ARGS, settings: SETTINGS, first, second }, null, 2)}\n`);
}

await main();
