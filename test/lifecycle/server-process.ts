import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { EnvSchema } from '../../src/env.js';
import { freePort } from '../helpers/free-port.js';

/** Project root, where `src/server.ts` lives. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export { freePort };

/**
 * A PGlite DATA_DIR for a spawned kernel, holding the cluster the global setup migrated once
 * (its `dumpDataDir` tarball unpacked), so the process skips initdb (3-6 s). Without the dump or
 * `tar`, an empty directory: the process creates its cluster itself.
 */
export function seededDataDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const dump = inject('pgliteDumpFile');
  if (dump) {
    try {
      execFileSync('tar', ['-xf', dump, '-C', dir], { stdio: 'ignore' });
    } catch {
      rmSync(dir, { recursive: true, force: true });
      return mkdtempSync(path.join(tmpdir(), prefix));
    }
  }
  return dir;
}

/**
 * The parent's environment without any kernel setting, so a developer's DATABASE_URL or
 * PACKS_DISABLED never leaks into the spawned server: each test says what it runs with.
 */
export function cleanEnv(settings: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  const kernelKeys = new Set([...Object.keys(EnvSchema.properties), 'TEST_DATABASE_URL']);
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !kernelKeys.has(key)) env[key] = value;
  }
  return { ...env, ...settings };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  port: number;
  origin: string;
  /** Every stdout and stderr line so far. */
  readonly output: string[];
  /** Resolves with the first line matching `pattern` (already seen or still to come). */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** Resolves when the process exits; rejects after `timeoutMs` (the process is then killed). */
  waitForExit(timeoutMs: number): Promise<Exit>;
  /** Kills the process if it still runs and removes its data directory. */
  cleanup(): Promise<void>;
}

/** Status of one GET on a connection of its own, closed after it (undefined if nothing answered). */
function probe(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = httpGet(url, { agent: false, headers: { connection: 'close' }, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** Runs a real entry point, `node --import tsx src/server.ts` by default, with exactly `settings` as kernel env. */
export function runServer(settings: Record<string, string>, entry = 'src/server.ts'): { child: ChildProcessWithoutNullStreams; output: string[]; exited: Promise<Exit> } {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: projectRoot,
    env: cleanEnv(settings),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      output.push(...lines);
      child.emit('line');
    });
    stream.on('end', () => {
      if (rest) output.push(rest);
      rest = '';
      child.emit('line');
    });
  }
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, output, exited };
}

/**
 * Starts the kernel on a free loopback port with PGlite in a fresh temporary DATA_DIR, or on
 * `databaseUrl` when given; resolves once it listens and `/ready` answers 200, as a load
 * balancer would wait (right after a slow start under-pressure may still shed load briefly).
 */
export async function startServer(options: { databaseUrl?: string; env?: Record<string, string> } = {}): Promise<ServerProcess> {
  const port = await freePort();
  const dataDir = seededDataDir('vk-lifecycle-');
  const settings: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
    ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
    ...options.env,
  };
  const { child, output, exited } = runServer(settings);
  let exit: Exit | undefined;
  void exited.then((e) => {
    exit = e;
    child.emit('line');
  });

  const waitForLine = (pattern: RegExp, timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const found = output.find((l) => pattern.test(l));
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (exit) {
          done();
          reject(new Error(`server exited (${exit.code ?? exit.signal}) before printing ${pattern}:\n${output.join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${output.join('\n')}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        child.off('line', check);
      };
      child.on('line', check);
      check();
    });

  const waitForExit = (timeoutMs: number) =>
    new Promise<Exit>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`server still running ${timeoutMs} ms later:\n${output.join('\n')}`));
      }, timeoutMs);
      void exited.then((e) => {
        clearTimeout(timer);
        resolve(e);
      });
    });

  const cleanup = async () => {
    if (!exit) {
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitForLine(/Server listening at/, 60_000);
    const deadline = Date.now() + 30_000;
    while ((await probe(`${origin}/ready`)) !== 200) {
      if (exit || Date.now() > deadline) throw new Error(`server never became ready:\n${output.join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { child, port, origin, output, waitForLine, waitForExit, cleanup };
}
