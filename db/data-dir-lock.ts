import { closeSync, openSync, readFileSync, unlinkSync, utimesSync, writeSync, statSync } from 'node:fs';
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
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
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

/** Takes the data folder's lock or throws `DataDirInUseError` naming the process that holds it. */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = path.resolve(dataDir, LOCK_FILE);
  const mine = readHolder(file);
  if (heldHere.has(file) && mine) throw new DataDirInUseError(dataDir, mine);
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    command: process.argv.slice(1).map((a) => path.basename(a)).join(' ').slice(0, 200) || 'node',
    startedAt: new Date().toISOString(),
  };
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
      const holder = readHolder(file);
      if (holder && holderIsAlive(file, holder)) throw new DataDirInUseError(dataDir, holder);
      try {
        unlinkSync(file); // stale: its holder is gone
      } catch {
        // another starting process removed it first; try again
      }
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(me));
    } finally {
      closeSync(fd);
    }
    // Two processes taking over the same stale lock at once: each removed the stale file and
    // created its own, so the later one replaced the earlier's. Whoever reads another pid back
    // has lost and refuses.
    const readBack = readHolder(file);
    if (readBack && (readBack.pid !== me.pid || readBack.host !== me.host)) throw new DataDirInUseError(dataDir, readBack);
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
