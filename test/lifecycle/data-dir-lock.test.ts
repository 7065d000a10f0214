import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
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
  it('refuses a second holder, names it, and frees the folder on release', async () => {
    const dir = tempDir();
    const lock = await lockDataDir(dir);
    await expect(lockDataDir(dir)).rejects.toThrow(DataDirInUseError);
    await expect(lockDataDir(dir)).rejects.toThrow(new RegExp(`in use by process ${process.pid} on ${hostname()}.*set DATABASE_URL`));
    lock.release();
    (await lockDataDir(dir)).release();
  });

  it('takes over a lock whose process is gone', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, ['-e', '0']);
    const deadPid = await new Promise<number>((resolve) => child.once('exit', () => resolve(child.pid!)));
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: deadPid, host: hostname(), command: 'gone', startedAt: '2026-01-01T00:00:00.000Z' }));
    const lock = await lockDataDir(dir);
    expect(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('from another host: refuses while the holder refreshes the file, takes over once it stopped', async () => {
    const dir = tempDir();
    const file = path.join(dir, LOCK_FILE);
    writeFileSync(file, JSON.stringify({ pid: 1, host: 'another-host', command: 'node server.js', startedAt: '2026-01-01T00:00:00.000Z' }));
    await expect(lockDataDir(dir)).rejects.toThrow(/in use by process 1 on another-host/);
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    (await lockDataDir(dir)).release();
  });

  it('takes over a lock naming its own pid (a container restarted as pid 1), a non-Node pid, and an unreadable one', async () => {
    const dir = tempDir();
    const file = path.join(dir, LOCK_FILE);
    writeFileSync(file, JSON.stringify({ pid: process.pid, host: hostname(), command: 'previous life', startedAt: '2026-01-01T00:00:00.000Z' }));
    (await lockDataDir(dir)).release();
    const sleeper = spawn('sleep', ['30']);
    try {
      writeFileSync(file, JSON.stringify({ pid: sleeper.pid, host: hostname(), command: 'node server.js', startedAt: '2026-01-01T00:00:00.000Z' }));
      (await lockDataDir(dir)).release();
    } finally {
      sleeper.kill();
    }
    writeFileSync(file, '{"pid": 12');
    (await lockDataDir(dir)).release();
  });

  it('says so when the folder is not writable', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o500);
    try {
      // root ignores directory permissions; the check is only meaningful for other users
      if (process.getuid?.() === 0) return;
      await expect(lockDataDir(dir)).rejects.toThrow(/is not writable/);
    } finally {
      chmodSync(dir, 0o700);
    }
  });

  it('two processes racing for the same folders: never both win a round', async () => {
    const base = tempDir();
    const rounds = 40;
    const slotMs = 25;
    const startAt = Date.now() + 3000;
    const race = () =>
      new Promise<number[]>((resolve, reject) => {
        const racer = spawn(process.execPath, ['--import', 'tsx', 'test/lifecycle/fixtures/lock-racer.ts', base, String(startAt), String(rounds), String(slotMs)], { cwd: projectRoot });
        let out = '';
        racer.stdout.on('data', (c: Buffer) => (out += c.toString()));
        racer.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`racer exited ${code}`))));
      });
    const [one, two] = await Promise.all([race(), race()]);
    const both = one.filter((k) => two.includes(k));
    expect(both).toEqual([]);
    expect(one.length + two.length).toBeGreaterThan(0);
  }, 30_000);
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
