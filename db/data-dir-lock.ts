import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

/**
 * The embedded database is single-process: PGlite has no locking of its own, and two processes
 * on one data folder each keep their own copy of the pages in memory, so writes confirmed by one
 * are lost when the other writes its pages back. This lock makes the second process refuse to
 * start instead, naming the holder.
 *
 * The lock is a file, `<dataDir>/valhalla.lock`, created exclusively (`O_EXCL`) and holding
 * `{ pid, host, command, startedAt }`. A lock whose holder is gone is taken over:
 * - on the same host, when no process has that pid (or the pid is this process's own: a
 *   container restarted with the same pid 1);
 * - from another host (a volume moved to a new container), when the holder stopped refreshing
 *   the file's modification time, which it does every REFRESH_MS, for STALE_MS.
 * It is removed on a clean close; a crash leaves it, and the next start takes it over.
 */
export const LOCK_FILE = 'valhalla.lock';
const REFRESH_MS = 5_000;
const STALE_MS = 20_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Lock files held by this process: a second open of the same folder in-process is refused too. */
const heldHere = new Set<string>();

export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  startedAt: string;
}

export class DataDirInUseError extends Error {
  readonly code = 'DATA_DIR_IN_USE';
  constructor(dataDir: string, holder: LockHolder) {
    super(
      `DATA_DIR ${dataDir} is in use by process ${holder.pid} on ${holder.host} (${holder.command}, started ${holder.startedAt}): ` +
        'the embedded database allows one process; to run several (a server and a worker, or several servers) set DATABASE_URL to a PostgreSQL server',
    );
  }
}

export interface DataDirLock {
  release(): void;
}

function readHolder(file: string): LockHolder | null {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string') return null;
    return { pid: parsed.pid, host: parsed.host, command: String(parsed.command ?? '?'), startedAt: String(parsed.startedAt ?? '?') };
  } catch {
    return null; // unreadable or half-written: treated as stale
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false; // EPERM: exists, someone else's
  }
  // A pid reused by an unrelated program (a container whose entrypoint changed) is no holder:
  // where /proc tells, only a Node process counts.
  try {
    return /node/i.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return true;
  }
}

function holderIsAlive(file: string, holder: LockHolder): boolean {
  if (holder.host === hostname()) return holder.pid !== process.pid && processExists(holder.pid);
  try {
    return Date.now() - statSync(file).mtimeMs < STALE_MS;
  } catch {
    return false;
  }
}

function readRaw(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/**
 * Creates `file` with `content` atomically: written to a temporary name first, then hard-linked
 * into place (`link` fails with EEXIST if the lock exists), so no one ever reads a half-written lock.
 */
function createExclusive(file: string, content: string): boolean {
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(temporary, content, { mode: 0o644 });
  try {
    linkSync(temporary, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    try {
      unlinkSync(temporary);
    } catch {
      // already gone
    }
  }
}

export class DataDirNotWritableError extends Error {
  readonly code = 'DATA_DIR_NOT_WRITABLE';
  constructor(dataDir: string, cause: string) {
    super(`DATA_DIR ${dataDir} is not writable (${cause}): the embedded database keeps its files there`);
  }
}

/** Takes the data folder's lock or throws `DataDirInUseError` naming the process that holds it. */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const file = path.resolve(dataDir, LOCK_FILE);
  const mine = readHolder(file);
  if (heldHere.has(file) && mine) throw new DataDirInUseError(dataDir, mine);
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    command: process.argv.slice(1).map((a) => path.basename(a)).join(' ').slice(0, 200) || 'node',
    startedAt: new Date().toISOString(),
  };
  const content = JSON.stringify(me);
  for (let attempt = 0; ; attempt++) {
    let created: boolean;
    try {
      created = createExclusive(file, content);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new DataDirNotWritableError(dataDir, code);
    }
    if (!created) {
      if (attempt >= 3) throw new Error(`DATA_DIR ${dataDir}: could not take its lock file ${LOCK_FILE}`);
      const raw = readRaw(file);
      const holder = raw === null ? null : readHolder(file);
      if (holder && holderIsAlive(file, holder)) throw new DataDirInUseError(dataDir, holder);
      // Stale: remove exactly what was judged stale. Another process may have replaced it since.
      if (raw !== null && readRaw(file) === raw) {
        try {
          unlinkSync(file);
        } catch {
          // another starting process removed it first
        }
      }
      continue;
    }
    // Two processes taking over the same stale lock at once can each remove it and create their
    // own: the later one replaced the earlier's. Read back twice, a moment apart: whoever does
    // not find its own lock has lost and refuses.
    for (const pause of [0, 50]) {
      if (pause) await sleep(pause);
      const readBack = readHolder(file);
      if (readBack === null || readBack.pid !== me.pid || readBack.host !== me.host || readRaw(file) !== content) {
        throw new DataDirInUseError(dataDir, readBack ?? { pid: 0, host: '?', command: 'another process taking the lock at the same time', startedAt: '?' });
      }
    }
    const refresh = setInterval(() => {
      try {
        const now = new Date();
        utimesSync(file, now, now);
      } catch {
        // the folder went away; nothing to refresh
      }
    }, REFRESH_MS);
    refresh.unref();
    heldHere.add(file);
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        clearInterval(refresh);
        heldHere.delete(file);
        const current = readHolder(file);
        if (current?.pid === me.pid && current.host === me.host) {
          try {
            unlinkSync(file);
          } catch {
            // already gone
          }
        }
      },
    };
  }
}
