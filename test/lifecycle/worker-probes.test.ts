import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runServer, seededDataDir, type Exit } from './server-process.js';

// `npm run worker` serves no API, but a probe and a scraper must reach it: /live, /ready and
// /metrics on WORKER_PORT, through the real entry point.

const dataDir = seededDataDir('vk-worker-');
let port: number;
let worker: ReturnType<typeof runServer>;
let exit: Exit | undefined;

async function waitFor(pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!worker.output.some((l) => pattern.test(l))) {
    if (exit || Date.now() > deadline) throw new Error(`no line matching ${pattern}:\n${worker.output.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  port = await freePort();
  worker = runServer({ HOST: '127.0.0.1', WORKER_PORT: String(port), LOG_LEVEL: 'info', DATA_DIR: dataDir }, 'src/worker.ts');
  void worker.exited.then((e) => (exit = e));
  await waitFor(/worker probes listening/, 60_000);
}, 90_000);

afterAll(async () => {
  if (!exit) {
    worker.child.kill('SIGKILL');
    await worker.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe('worker probes', () => {
  it('answers /live, /ready and /metrics on WORKER_PORT', async () => {
    const live = await fetch(`http://127.0.0.1:${port}/live`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: 'ok' });
    expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = await metrics.text();
    expect(body).toContain('# TYPE valhalla_jobs_total counter');
    expect(body).toMatch(/^valhalla_build_info\{.*\} 1$/m);
  });

  it('serves nothing else: the API stays on the web instances', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/system/info`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect((await fetch(`http://127.0.0.1:${port}/live`, { method: 'POST' })).status).toBe(404);
  });

  it('stops cleanly on SIGTERM, even with a scraper holding a keep-alive connection', async () => {
    await fetch(`http://127.0.0.1:${port}/metrics`, { keepalive: true });
    worker.child.kill('SIGTERM');
    const started = Date.now();
    const e = await worker.exited;
    expect(e).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(worker.output.some((l) => l.includes('worker stopping'))).toBe(true);
  });
});
