import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/helpers/free-port.js';

/** Servers the benches start as child processes on loopback, and how to stop and measure them. */

export { freePort };

export const benchRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A positive integer setting from the environment, or `fallback` when unset. */
export function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export interface RunningServer {
  name: string;
  child: ChildProcess;
  origin: string;
  stderr: string[];
  exited: Promise<number | null>;
}

const running: RunningServer[] = [];

/** The status `url` answers within 2 s, or undefined when it does not answer. */
export async function status(url: string, headers: Record<string, string> = {}): Promise<number | undefined> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return undefined;
  }
}

export class StartError extends Error {}

/**
 * Spawns `script` with tsx on a free loopback port; resolves once `probe` answers 200 (sent with
 * `probeHeaders`), or throws `StartError` with the last lines of its stderr if it exits or does not
 * answer within `timeoutMs`. stdout (the request log) goes to /dev/null. `nodeArgs` go to node
 * before the script (e.g. `--cpu-prof`, which NODE_OPTIONS does not accept).
 */
export async function startServer(
  name: string,
  script: string,
  env: Record<string, string>,
  probe: string,
  opts: { probeHeaders?: Record<string, string>; timeoutMs?: number; nodeArgs?: string[] } = {},
): Promise<RunningServer> {
  const port = await freePort();
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', script], {
    cwd: benchRoot,
    env: { ...process.env, ...env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => stderr.push(...chunk.split('\n').filter(Boolean)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const server: RunningServer = { name, child, origin: `http://127.0.0.1:${port}`, stderr, exited };
  running.push(server);

  let gone = false;
  void exited.then(() => (gone = true));
  const timeoutMs = opts.timeoutMs ?? 90_000;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gone) throw new StartError(`${name} server exited during start:\n${stderr.slice(-20).join('\n')}`);
    if ((await status(`${server.origin}${probe}`, opts.probeHeaders)) === 200) return server;
    await sleep(200);
  }
  throw new StartError(`${name} server did not answer 200 on ${probe} within ${timeoutMs / 1000} s:\n${stderr.slice(-20).join('\n')}`);
}

/** The last lines each started server wrote to stderr, for a failed run's report. */
export function stderrTails(lines = 15): string {
  return running.map((s) => `--- ${s.name} (exit ${s.child.exitCode ?? s.child.signalCode ?? 'running'}):\n${s.stderr.slice(-lines).join('\n')}`).join('\n');
}

/** SIGTERM to every started server, SIGKILL after 15 s; their exit codes. */
export async function stopAll(): Promise<Array<{ name: string; code: number | null }>> {
  const stops = running.splice(0).map(async (s) => {
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
    const code = await Promise.race([s.exited, sleep(15_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      s.child.kill('SIGKILL');
      return { name: s.name, code: await s.exited };
    }
    return { name: s.name, code };
  });
  return Promise.all(stops);
}

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat; null where
 * it cannot be read. Per request it is what a server pays, whatever else shares the machine.
 */
export function cpuMsOf(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), from its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS_PER_SECOND : null;
  } catch {
    return null;
  }
}

/** USER_HZ: 100 on every Linux the benches run on (getconf CLK_TCK). */
const CLOCK_TICKS_PER_SECOND = 100;

/** Resident set size of a process in MiB (current and peak), from /proc on Linux (ps elsewhere). */
export function rssOf(pid: number | undefined): { rssMiB: number; peakRssMiB: number } | null {
  if (pid === undefined) return null;
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rssMiB: Math.round(kib('VmRSS') / 102.4) / 10, peakRssMiB: Math.round(kib('VmHWM') / 102.4) / 10 };
  } catch {
    try {
      const kb = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim());
      return { rssMiB: Math.round(kb / 102.4) / 10, peakRssMiB: NaN };
    } catch {
      return null;
    }
  }
}
