import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataDirInUseError, LOCK_FILE, lockDataDir } from '../../db/data-dir-lock.js';
import { cleanEnv, freePort, projectRoot, runServer, startServer, type ServerProcess } from './server-process.js';

/**
 * The embedded database is single-process (issue "Survive faults", item 5): two processes on one
 * DATA_DIR both became ready and each lost the other's confirmed writes. The second process must
 * refuse to start with one line naming the holder, and a lock left by a dead process must not
 * block a restart.
 */
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'vk-lock-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const lockLine = (output: string[]) => output.filter((l) => /is in use by process/.test(l));

describe('the embedded data folder lock (in process)', () => {
  it('refuses a second holder, names it, and frees the folder on release', () => {
    const dir = tempDir();
    const lock = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(DataDirInUseError);
    expect(() => lockDataDir(dir)).toThrow(new RegExp(`in use by process ${process.pid} on ${hostname()}.*set DATABASE_URL`));
    lock.release();
    lockDataDir(dir).release();
  });

  it('takes over a lock whose process is gone', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, ['-e', '0']);
    const deadPid = await new Promise<number>((resolve) => child.once('exit', () => resolve(child.pid!)));
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: deadPid, host: hostname(), command: 'gone', startedAt: '2026-01-01T00:00:00.000Z' }));
    const lock = lockDataDir(dir);
    expect(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('from another host: refuses while the holder refreshes the file, takes over once it stopped', () => {
    const dir = tempDir();
    const file = path.join(dir, LOCK_FILE);
    writeFileSync(file, JSON.stringify({ pid: 1, host: 'another-host', command: 'node server.js', startedAt: '2026-01-01T00:00:00.000Z' }));
    expect(() => lockDataDir(dir)).toThrow(/in use by process 1 on another-host/);
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    lockDataDir(dir).release();
  });

  it('takes over a lock naming its own pid (a container restarted as pid 1) and an unreadable one', () => {
    const dir = tempDir();
    const file = path.join(dir, LOCK_FILE);
    writeFileSync(file, JSON.stringify({ pid: process.pid, host: hostname(), command: 'previous life', startedAt: '2026-01-01T00:00:00.000Z' }));
    lockDataDir(dir).release();
    writeFileSync(file, '{"pid": 12');
    lockDataDir(dir).release();
  });
});

describe('two processes on one embedded data folder', () => {
  let first: ServerProcess | undefined;
  afterAll(async () => first?.cleanup());

  it('the second server and a worker refuse to start; after the holder dies a restart works', async () => {
    const dataDir = tempDir();
    first = await startServer({ env: { DATA_DIR: dataDir } });

    const second = runServer({ HOST: '127.0.0.1', PORT: String(await freePort()), DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
    const exit = await second.exited;
    expect(exit.code).toBe(1);
    const lines = lockLine(second.output);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`in use by process ${first.child.pid}`);
    expect(lines[0]).toContain('DATABASE_URL');

    const worker = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], { cwd: projectRoot, env: cleanEnv({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' }) });
    let workerOutput = '';
    worker.stdout.on('data', (c: Buffer) => (workerOutput += c.toString()));
    worker.stderr.on('data', (c: Buffer) => (workerOutput += c.toString()));
    const workerExit = await new Promise<number | null>((resolve) => worker.once('exit', resolve));
    expect(workerExit).toBe(1);
    expect(workerOutput).toContain(`in use by process ${first.child.pid}`);

    // The holder is killed: its lock file stays behind, and a restart takes it over.
    first.child.kill('SIGKILL');
    await first.waitForExit(10_000);
    expect(JSON.parse(readFileSync(path.join(dataDir, LOCK_FILE), 'utf8')).pid).toBe(first.child.pid);
    const restarted = await startServer({ env: { DATA_DIR: dataDir } });
    try {
      expect((await fetch(`${restarted.origin}/live`)).status).toBe(200);
    } finally {
      restarted.child.kill('SIGTERM');
      await restarted.waitForExit(15_000);
    }
    // A clean shutdown removes the lock.
    expect(() => readFileSync(path.join(dataDir, LOCK_FILE))).toThrow();
  }, 120_000);
});
