import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../lifecycle/server-process.js';

export const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';
export const nginxInstalled = (): boolean => existsSync(NGINX_BIN);

/** The example config, with its two upstream addresses and its listen port swapped for loopback ones. */
export function clusterConfig(listenPort: number, upstreamPorts: [number, number]): string {
  let text = readFileSync(path.join(projectRoot, 'deploy/nginx/valhalla.conf'), 'utf8');
  const swap = (from: string, to: string) => {
    if (text.split(from).length !== 2) throw new Error(`deploy/nginx/valhalla.conf: expected "${from}" exactly once`);
    text = text.replace(from, to);
  };
  swap('server 10.0.0.11:3000', `server 127.0.0.1:${upstreamPorts[0]}`);
  swap('server 10.0.0.12:3000', `server 127.0.0.1:${upstreamPorts[1]}`);
  swap('listen 80;', `listen 127.0.0.1:${listenPort};`);
  // A control run (CLUSTER_NGINX_RETRY=off): what the rolling restart does without the retry.
  if (process.env.CLUSTER_NGINX_RETRY === 'off') swap('proxy_next_upstream error timeout http_502 http_503;', 'proxy_next_upstream off;');
  return text;
}

function readChildren(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export interface Nginx {
  child: ChildProcess;
  origin: string;
  errorLog(): string;
  stop(): Promise<void>;
}

/**
 * nginx in the foreground as a child process, everything it writes (pid, logs, temp files)
 * inside `dir`. The `user` directive only when root (nginx refuses it otherwise).
 */
export async function startNginx(dir: string, listenPort: number, upstreamPorts: [number, number]): Promise<Nginx> {
  for (const sub of ['logs', 'temp']) mkdirSync(path.join(dir, sub), { recursive: true });
  const root = process.getuid?.() === 0;
  // As root the workers run as nobody: let them into the (0700) directory and its temp folder,
  // where nginx buffers large bodies.
  if (root) {
    chmodSync(dir, 0o755);
    chmodSync(path.join(dir, 'temp'), 0o777);
  }
  const conf = [
    root ? 'user nobody nogroup;' : '',
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/logs/error.log warn;`,
    'events { worker_connections 1024; }',
    'http {',
    // status|upstream(s) tried|client: the test reads which instance served what.
    "  log_format cluster '$status|$upstream_addr|$remote_addr';",
    `  access_log ${dir}/logs/access.log cluster;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/temp/${t};`),
    // Clients' connections only (the example's upstream keepalive is its own). nginx closes a
    // client connection after 1000 requests (its default), answering the last with
    // `Connection: close`. autocannon ignores that header and writes its next request at once,
    // and now and then that write meets the closed socket: a reset it counts as an error, with
    // no instance restarting (1-4 per 8 s of bare Fastify behind nginx; none with this line).
    // Browsers and Node's agent open a new connection instead.
    '  keepalive_requests 1000000;',
    clusterConfig(listenPort, upstreamPorts),
    '}',
  ].join('\n');
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  const child = spawn(NGINX_BIN, ['-p', dir, '-c', file, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => stderr.push(c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const errorLog = () => {
    try {
      return stderr.join('') + readFileSync(path.join(dir, 'logs/error.log'), 'utf8');
    } catch {
      return stderr.join('');
    }
  };
  const origin = `http://127.0.0.1:${listenPort}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited at start:\n${errorLog()}`);
    try {
      await fetch(`${origin}/live`, { signal: AbortSignal.timeout(1000) });
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`nginx did not answer within 10 s:\n${errorLog()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    child,
    origin,
    errorLog,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      // The workers, by id, in case they outlive a master that had to be killed.
      const workers = readChildren(child.pid);
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      for (const pid of workers) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    },
  };
}
