import { spawn, type ChildProcess } from 'node:child_process';
import { cleanEnv, projectRoot } from '../lifecycle/server-process.js';

export interface KernelProcess {
  name: string;
  port: number;
  origin: string;
  child: ChildProcess;
  /** The last lines it wrote (stdout and stderr), for failure messages. */
  tail(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The status of a GET within `timeoutMs`, or 0 when nothing answered. */
export async function statusOf(url: string, timeoutMs = 2000, headers: Record<string, string> = {}): Promise<number> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/**
 * `npm start`'s own runner (`node scripts/run.mjs src/server`: dist/, compiled first when stale)
 * on `port`, with exactly `settings` as kernel environment. Resolves once `/ready` answers 200.
 */
export async function startKernel(name: string, port: number, settings: Record<string, string>, timeoutMs = 120_000): Promise<KernelProcess> {
  const child = spawn(process.execPath, ['scripts/run.mjs', 'src/server'], {
    cwd: projectRoot,
    env: cleanEnv({ ...settings, HOST: '127.0.0.1', PORT: String(port), INSTANCE_ID: name }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      lines.push(...chunk.split('\n').filter(Boolean));
      if (lines.length > 400) lines.splice(0, lines.length - 200);
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const kernel: KernelProcess = {
    name,
    port,
    origin: `http://127.0.0.1:${port}`,
    child,
    tail: () => lines.slice(-40).join('\n'),
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
  };
  const deadline = Date.now() + timeoutMs;
  while ((await statusOf(`${kernel.origin}/ready`, 1000)) !== 200) {
    if (!kernel.alive() || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} never became ready:\n${kernel.tail()}`);
    }
    await sleep(50);
  }
  return kernel;
}

/** SIGKILL if it still runs, and wait for the exit. */
export async function killKernel(kernel: KernelProcess | undefined): Promise<void> {
  if (!kernel) return;
  if (kernel.alive()) kernel.child.kill('SIGKILL');
  await kernel.exited;
}
