import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../plugins/api-keys/key-format.js';
import { TEST_DB_PREFIX, withDatabase } from '../helpers/database.js';
import { proxyInFrontOf, type FaultyProxy } from '../helpers/faulty-proxy.js';
import { freePort } from '../lifecycle/server-process.js';
import { closeConnections, request, type Answer } from './http.js';
import { killKernel, startKernel, statusOf, type KernelProcess } from './kernel-process.js';
import { nginxInstalled, NGINX_BIN, startNginx, type Nginx } from './nginx.js';

/**
 * `npm run test:cluster` (issue 13, item 1): two kernel processes (`npm start`'s runner) on one
 * PostgreSQL database, reached through a TCP proxy the test can cut, and one Redis, behind nginx
 * running deploy/nginx/valhalla.conf. Everything on loopback; the figures are printed at the end
 * (the README's "Several instances behind a load balancer" quotes them).
 */

const PG_SERVER = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
/**
 * After SIGTERM: readiness fails this long before the listener closes (see deploy/nginx/valhalla.conf).
 * CLUSTER_SHUTDOWN_DELAY_MS tries another value (the README reports what 0 did).
 */
const SHUTDOWN_DELAY_MS = Number(process.env.CLUSTER_SHUTDOWN_DELAY_MS ?? 2000);
const ACQUIRE_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function reachable(check: () => Promise<unknown>): Promise<boolean> {
  try {
    await check();
    return true;
  } catch {
    return false;
  }
}
const postgresUp = await reachable(async () => {
  const sql = postgres(PG_SERVER, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await sql`select 1`;
  } finally {
    await sql.end({ timeout: 1 });
  }
});
const redisUp = await reachable(async () => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } finally {
    redis.disconnect();
  }
});
const skipReason = !nginxInstalled()
  ? `nginx is not installed (${NGINX_BIN}; Debian: apt-get install nginx)`
  : !postgresUp
    ? `PostgreSQL does not answer at ${new URL(PG_SERVER).host} (TEST_DATABASE_URL)`
    : '';
if (skipReason) {
  // CI installs nginx and starts PostgreSQL and Redis (.ci/run): a skip there hides a broken setup.
  if (process.env.CI) throw new Error(`cluster test cannot run in CI: ${skipReason}`);
  console.warn(`cluster test skipped: ${skipReason}`);
}
// Redis is optional, as in CI: without it only the rate-limit scenario skips (counters would be per instance).
if (!skipReason && !redisUp) console.warn(`cluster test: Redis does not answer at ${REDIS_URL} (REDIS_URL); the global rate-limit scenario skips`);

/** A local webhook receiver: every delivery it got, by webhook-id. */
function startSink(): Promise<{ server: http.Server; url: string; received: Array<{ id: string; n: number }> }> {
  const received: Array<{ id: string; n: number }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: { n?: number } };
        received.push({ id: String(req.headers['webhook-id']), n: Number(body.data?.n) });
      } catch {
        received.push({ id: String(req.headers['webhook-id']), n: NaN });
      }
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received })),
  );
}

/** Polls `check` every 10 ms until it holds; the time it took, or throws after `timeoutMs`. */
async function msUntil(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(10);
  }
  return Date.now() - started;
}

/** Runs `count` tasks with at most `concurrency` at a time. */
async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

const isProblem = (a: Answer) => String(a.headers['content-type']).startsWith('application/problem+json');

describe.skipIf(skipReason !== '')('two kernel instances behind nginx', () => {
  const adminKey = generateApiKey().token;
  const admin = { authorization: `Bearer ${adminKey}` };
  const dbName = `${TEST_DB_PREFIX}${Math.floor(Date.now() / 1000)}_cluster_${randomBytes(3).toString('hex')}`;
  const dbUrl = withDatabase(PG_SERVER, dbName);
  const redisPrefix = `valhalla:rl:cluster-${randomBytes(4).toString('hex')}:`;
  let dir = '';
  const figures: Record<string, unknown> = {};
  const everyKernel: KernelProcess[] = [];
  let settings: Record<string, string>;
  let proxy: FaultyProxy;
  let sink: Awaited<ReturnType<typeof startSink>>;
  let nginx: Nginx;
  let a: KernelProcess;
  let b: KernelProcess;

  const start = async (name: string, port: number) => {
    const kernel = await startKernel(name, port, settings);
    everyKernel.push(kernel);
    return kernel;
  };
  const via = (method: string, url: string, body?: unknown, headers: Record<string, string> = admin) =>
    request(nginx.origin, method, url, { body, headers });
  const on = (k: KernelProcess, method: string, url: string, body?: unknown, headers: Record<string, string> = admin) =>
    request(k.origin, method, url, { body, headers });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'vk-cluster-'));
    const sql = postgres(PG_SERVER, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(`create database "${dbName}"`);
    } finally {
      await sql.end();
    }
    // The instances reach PostgreSQL through the proxy from the start (scenario e cuts it).
    const proxied = await proxyInFrontOf(dbUrl);
    proxy = proxied.proxy;
    sink = await startSink();
    const [portA, portB, portNginx] = [await freePort(), await freePort(), await freePort()];
    settings = {
      DATABASE_URL: proxied.url,
      DATA_DIR: path.join(dir, 'data'),
      EXPORT_DIR: path.join(dir, 'exports'),
      ...(redisUp ? { REDIS_URL, RATE_LIMIT_REDIS_PREFIX: redisPrefix } : {}),
      // A loaded 2-core machine: a Redis answer slower than the default 200 ms would fail open.
      RATE_LIMIT_REDIS_TIMEOUT_MS: '1000',
      // The load below is one client: no default limit, no automatic blocks of 127.0.0.1.
      RATE_LIMIT_DEFAULT_MAX: '0',
      BLOCKLIST_RATE_LIMIT_THRESHOLD: '0',
      BLOCKLIST_AUTH_FAILURE_THRESHOLD: '0',
      // The test's own processes share 2 cores with the instances: no shedding on event-loop delay.
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
      ADMIN_API_KEY: adminKey,
      TRUST_PROXY: '127.0.0.1',
      SHUTDOWN_DELAY_MS: String(SHUTDOWN_DELAY_MS),
      READY_DB_TIMEOUT_MS: '500',
      DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_MS),
      WEBHOOK_ALLOW_PRIVATE: 'true',
      NOTIFY_SECRET_CLUSTER_HOOK: `whsec_${randomBytes(32).toString('base64')}`,
      NOTIFY_DISPATCH_INTERVAL_MS: '200',
      TRACE_SAMPLE_RATE: '0',
      LOG_LEVEL: 'warn',
    };
    // One after the other: the first may compile dist/ and applies the migrations.
    a = await start('cluster-a', portA);
    b = await start('cluster-b', portB);
    nginx = await startNginx(dir, portNginx, [portA, portB]);
  }, 240_000);

  afterAll(async () => {
    await nginx?.stop();
    await Promise.all(everyKernel.map((k) => killKernel(k)));
    closeConnections();
    await proxy?.close();
    await new Promise((r) => (sink ? sink.server.close(r) : r(undefined)));
    const sql = postgres(PG_SERVER, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(`drop database if exists "${dbName}" with (force)`);
    } finally {
      await sql.end();
    }
    if (redisUp) {
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      try {
        const keys = await redis.keys(`${redisPrefix}*`);
        if (keys.length) await redis.del(...keys);
      } finally {
        redis.disconnect();
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.info(`cluster figures: ${JSON.stringify(figures, null, 2)}`);
  }, 60_000);

  /** Which upstream served each request of this nginx access-log line range (log format in nginx.ts). */
  const upstreamsSince = (from: number) =>
    readFileSync(path.join(dir, 'logs/access.log'), 'utf8').split('\n').slice(from).filter(Boolean).map((l) => l.split('|')[1]);
  const accessLogLines = () => readFileSync(path.join(dir, 'logs/access.log'), 'utf8').split('\n').filter(Boolean).length;

  it.skipIf(!redisUp)('a. holds a rate limit across both instances (one Redis), counting the client address from X-Forwarded-For', async () => {
    const N = 20;
    const M = 50;
    // The requests come from 127.0.0.2; nginx connects to the instances from 127.0.0.1, so only
    // a kernel reading X-Forwarded-For from its trusted proxy sees 127.0.0.2.
    const rule = await via('POST', '/system/rate-limits', { scope: 'ip', match: '127.0.0.2', max: N, windowSeconds: 300 });
    expect(rule.status, rule.text).toBe(201);
    await sleep(1500); // the rule reaches the other instance (pinned in scenario b for other state)
    const logFrom = accessLogLines();
    const answers = await pool(M, 5, () =>
      request(nginx.origin, 'GET', '/system/maintenance', { headers: admin, localAddress: '127.0.0.2' }),
    );
    const admitted = answers.filter((x) => x.status >= 200 && x.status < 300);
    const refused = answers.filter((x) => x.status === 429);
    figures.rateLimit = { limit: N, sent: M, admitted: admitted.length, refused: refused.length };
    expect(admitted.length).toBe(N);
    expect(refused.length).toBe(M - N);
    for (const r of refused) {
      expect(isProblem(r)).toBe(true);
      expect(r.json().type).toBe('/problems/rate-limited');
      expect(r.headers['retry-after']).toBeDefined();
    }
    const served = upstreamsSince(logFrom);
    expect(new Set(served)).toEqual(new Set([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]));
  });

  it('b. a change made through one instance holds on the other within one second', async () => {
    const propagation: Record<string, number> = {};
    figures.propagationMs = propagation;

    // API key revocation
    const client = await on(a, 'POST', '/system/api-clients', { name: 'cluster-reader', owner: 'cluster', scopes: ['flags:read'] });
    expect(client.status, client.text).toBe(201);
    const clientId = client.json<{ id: number }>().id;
    const key = await on(a, 'POST', `/system/api-clients/${clientId}/keys`, { name: 'reader', scopes: ['flags:read'] });
    expect(key.status, key.text).toBe(201);
    const { token, keyId } = key.json<{ token: string; keyId: string }>();
    const reader = { authorization: `Bearer ${token}` };
    await msUntil('the new key accepted on B', async () => (await on(b, 'GET', '/system/flags', undefined, reader)).status === 200);
    const revoke = await on(a, 'POST', `/system/api-clients/${clientId}/keys/${keyId}/revoke`, { reason: 'cluster test' });
    expect(revoke.status, revoke.text).toBe(200);
    propagation.keyRevocation = await msUntil('revocation on B', async () => (await on(b, 'GET', '/system/flags', undefined, reader)).status === 401);

    // A blocklist rule (a user agent: the test's own address stays unblocked)
    const probe = { 'user-agent': 'ClusterProbe/1.0' };
    expect(await statusOf(`${b.origin}/live`, 2000, probe)).toBe(200);
    const rule = await on(a, 'POST', '/system/security/blocklist', { type: 'user_agent', value: 'ClusterProbe*', reason: 'cluster test' });
    expect(rule.status, rule.text).toBe(201);
    propagation.blocklistRule = await msUntil('the rule on B', async () => (await statusOf(`${b.origin}/live`, 2000, probe)) === 403);
    expect((await on(a, 'DELETE', `/system/security/blocklist/${rule.json<{ id: number }>().id}`)).status).toBe(204);

    // A flag change
    const evaluation = async () => (await on(b, 'GET', '/system/flags/cluster.switch/evaluate?subject=u1')).json<{ reason?: string }>().reason;
    expect((await on(a, 'POST', '/system/flags', { key: 'cluster.switch', type: 'kill-switch', enabled: false })).status).toBe(201);
    await msUntil('the flag on B', async () => (await evaluation()) === 'DISABLED');
    expect((await on(a, 'PATCH', '/system/flags/cluster.switch', { enabled: true })).status).toBe(200);
    propagation.flagChange = await msUntil('the flag change on B', async () => (await evaluation()) !== 'DISABLED');

    // The maintenance switch: read-only, so a write on B answers 503
    let n = 0;
    const writeOnB = async () => (await on(b, 'PUT', `/system/config/cluster.probe`, { value: n++, reason: 'cluster test' })).status;
    expect(await writeOnB()).toBe(201);
    const readOnly = await on(a, 'POST', '/system/maintenance/state', { mode: 'read_only', reason: 'cluster test' });
    expect(readOnly.status, readOnly.text).toBe(200);
    // Polled on the mode B reports (from memory, as its write guard reads it); then a write tells.
    const modeOnB = async () => (await on(b, 'GET', '/system/maintenance')).json<{ effective: { mode: string } }>().effective.mode;
    propagation.maintenanceReadOnly = await msUntil('read-only on B', async () => (await modeOnB()) === 'read_only');
    expect(await writeOnB()).toBe(503);
    const normal = await on(a, 'POST', '/system/maintenance/state', { mode: 'normal', reason: 'cluster test done' });
    expect(normal.status, normal.text).toBe(200);
    propagation.maintenanceNormal = await msUntil('normal again on B', async () => (await modeOnB()) === 'normal');
    expect(await writeOnB()).toBe(200);

    for (const [kind, ms] of Object.entries(propagation)) expect(ms, kind).toBeLessThanOrEqual(1000);
  });

  it('c. delivers every outbox event exactly once with both instances dispatching', async () => {
    const K = 40;
    const channel = await via('POST', '/system/notify/channels', {
      name: 'cluster-sink',
      type: 'webhook',
      events: ['cluster.*'],
      config: { url: sink.url, secretEnvs: ['NOTIFY_SECRET_CLUSTER_HOOK'], timeoutMs: 5000 },
    });
    expect(channel.status, channel.text).toBe(201);
    const queued = await pool(K, 4, async (n) => via('POST', '/system/notify', { type: 'cluster.event', payload: { n } }));
    for (const q of queued) {
      expect(q.status, q.text).toBe(202);
      expect(q.json<{ items: unknown[] }>().items).toHaveLength(1);
    }
    const delivered = await msUntil('every event delivered', async () => new Set(sink.received.map((r) => r.id)).size >= K, 30_000);
    await sleep(3000); // a duplicate would come from another dispatcher's claim in the next rounds
    const byEvent = new Map<number, number>();
    for (const r of sink.received) byEvent.set(r.n, (byEvent.get(r.n) ?? 0) + 1);
    figures.outbox = { events: K, deliveries: sink.received.length, distinctWebhookIds: new Set(sink.received.map((r) => r.id)).size, allDeliveredMs: delivered };
    expect(sink.received).toHaveLength(K);
    expect(new Set(sink.received.map((r) => r.id)).size).toBe(K);
    expect([...byEvent.keys()].sort((x, y) => x - y)).toEqual(Array.from({ length: K }, (_, i) => i));
  });

  it('d. a rolling restart under GET load drops nothing', async () => {
    const flag = await via('POST', '/system/flags', { key: 'cluster.rolling', type: 'release', enabled: true });
    expect(flag.status, flag.text).toBe(201);
    await msUntil('the flag on both instances', async () => (await on(a, 'GET', '/system/flags/cluster.rolling')).status === 200 && (await on(b, 'GET', '/system/flags/cluster.rolling')).status === 200);
    // Stopped once both instances are replaced (a start takes 5-70 s on the shared 2-core machine).
    const load = autocannon({ url: `${nginx.origin}/system/flags/cluster.rolling`, connections: 10, duration: 280, timeout: 10, headers: admin });
    // Beside the GETs, one client creating flags one after the other: reported, not asserted (nginx
    // does not pass on a POST it has sent; see the README on writes during a restart).
    const posts: Record<string, number> = {};
    let postsDone = false;
    const poster = (async () => {
      for (let i = 0; !postsDone && i < 5000; i++) {
        const status = await via('POST', '/system/flags', { key: `cluster.rolling.p${i}`, type: 'release' }).then((x) => String(x.status), () => 'network-error');
        posts[status] = (posts[status] ?? 0) + 1;
        await sleep(20);
      }
    })();
    const logFrom = accessLogLines();
    const restarts: Array<Record<string, number | string | null>> = [];
    try {
      await sleep(2000);
      for (const which of ['a', 'b'] as const) {
        const old = which === 'a' ? a : b;
        const signalled = Date.now();
        old.child.kill('SIGTERM');
        let readiness = 200;
        const notReadyMs = await msUntil(`${old.name} failing readiness`, async () => (readiness = await statusOf(`${old.origin}/ready`, 1000)) !== 200, Math.max(SHUTDOWN_DELAY_MS, 1000));
        // 503 while it waits out the delay (0: nothing answers, the listener is closed at once)
        if (SHUTDOWN_DELAY_MS > 0) expect(readiness).toBe(503);
        const exit = await Promise.race([old.exited, sleep(20_000).then(() => null)]);
        expect(exit, `${old.name} did not exit within 20 s of SIGTERM`).not.toBeNull();
        const exitedMs = Date.now() - signalled;
        const replacement = await start(`${old.name}-2`, old.port);
        if (which === 'a') a = replacement;
        else b = replacement;
        restarts.push({ instance: old.name, notReadyMs, exitedMs, exitCode: exit!.code, readyAgainMs: Date.now() - signalled });
        expect(exit!.code).toBe(0);
        await sleep(2000); // traffic on the replacement before the next one goes
      }
    } finally {
      load.stop();
      postsDone = true;
      await poster;
    }
    const result = await load;
    const served = upstreamsSince(logFrom);
    figures.rollingRestart = {
      shutdownDelayMs: SHUTDOWN_DELAY_MS,
      requests: result['2xx'] + result.non2xx,
      ok: result['2xx'],
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      seconds: result.duration,
      retriedByNginx: served.filter((u) => u?.includes(',')).length,
      restarts,
      flagCreatesAlongside: posts,
    };
    expect(result['2xx']).toBeGreaterThan(100);
    expect(result.non2xx).toBe(0);
    expect(result.errors).toBe(0);
    expect(result.timeouts).toBe(0);
  }, 300_000);

  it('e. a PostgreSQL cut under load: 503 problems, processes up, both recover by themselves', async () => {
    const CUT_MS = 4000;
    type Outcome = { kind: string; status: number; type?: string; problem: boolean; ms: number; sentAt: number };
    const outcomes: Outcome[] = [];
    let stop = false;
    let n = 0;
    const worker = async (kind: 'read' | 'write') => {
      while (!stop) {
        const sentAt = Date.now();
        try {
          const answer =
            kind === 'read'
              ? await via('GET', '/system/admin/operations?limit=1')
              : await via('PUT', `/system/config/cluster.cut.w${n++}`, { value: 1, reason: 'cluster test' });
          outcomes.push({ kind, status: answer.status, problem: isProblem(answer), type: answer.status >= 400 ? answer.json<{ type?: string }>().type : undefined, ms: answer.ms, sentAt });
        } catch {
          outcomes.push({ kind, status: 0, problem: false, ms: Date.now() - sentAt, sentAt });
        }
        await sleep(50);
      }
    };
    const load = Promise.all([worker('read'), worker('write'), worker('write')]);
    let readyMs: number;
    let writeMs: number;
    let restoredAt: number;
    let cutAt: number;
    const probes: Record<string, number[]> = { live: [], ready: [] };
    try {
      await sleep(1000);
      proxy.cut();
      cutAt = Date.now();
      while (Date.now() - cutAt < CUT_MS) {
        for (const k of [a, b]) {
          probes.live!.push(await statusOf(`${k.origin}/live`));
          if (Date.now() - cutAt > 1000) probes.ready!.push(await statusOf(`${k.origin}/ready`));
        }
        await sleep(200);
      }
      proxy.restore();
      restoredAt = Date.now();
      readyMs = await msUntil('both instances ready again', async () => (await statusOf(`${a.origin}/ready`)) === 200 && (await statusOf(`${b.origin}/ready`)) === 200, 20_000);
      let lastWrite: Answer | undefined;
      writeMs =
        (await msUntil(
          'a write through nginx',
          async () => (lastWrite = await via('PUT', '/system/config/cluster.after_cut', { value: Date.now(), reason: 'cluster test' })).status < 300,
          20_000,
        ).catch((err: Error) => {
          throw new Error(`${err.message}; last answer ${lastWrite?.status} ${lastWrite?.text}\nA:\n${a.tail()}\nB:\n${b.tail()}`);
        })) + readyMs;
    } finally {
      proxy.restore();
      stop = true;
      await load;
    }

    // Sent after the cut had taken hold, answered before the restore.
    const during = outcomes.filter((o) => o.sentAt > cutAt + 200 && o.sentAt + o.ms < restoredAt);
    figures.postgresCut = {
      cutMs: CUT_MS,
      requestsDuringCut: during.length,
      statusesDuringCut: [...new Set(during.map((o) => o.status))],
      slowestAnswerDuringCutMs: Math.max(...during.map((o) => o.ms)),
      readyAgainMs: readyMs,
      firstWriteAgainMs: writeMs,
    };
    expect(during.length).toBeGreaterThan(10);
    for (const o of during) {
      expect(o.status, JSON.stringify(o)).toBe(503);
      expect(o.problem).toBe(true);
      expect(o.type).toBe('/problems/database-unavailable');
      // nginx may try both instances for a GET: two acquire deadlines at most.
      expect(o.ms).toBeLessThan(2 * ACQUIRE_MS + 1500);
    }
    expect(new Set(probes.live)).toEqual(new Set([200]));
    expect(new Set(probes.ready)).toEqual(new Set([503]));
    expect(a.alive() && b.alive()).toBe(true);
    expect(readyMs).toBeLessThan(10_000);
    expect(writeMs).toBeLessThan(10_000);
  }, 60_000);

  it('f. SIGKILL during a burst of writes: every acknowledged write is in the database, the audit chain verifies', async () => {
    const acknowledged: string[] = [];
    let failed = 0;
    let killedAt = 0;
    await pool(400, 8, async (i) => {
      if (killedAt) return;
      const key = `cluster.kill.k${i}`;
      try {
        const answer = await on(a, 'PUT', `/system/config/${key}`, { value: i, reason: 'cluster test' });
        if (answer.status === 201) acknowledged.push(key);
        else failed++;
      } catch {
        failed++;
      }
      if (!killedAt && acknowledged.length >= 40) {
        killedAt = Date.now();
        a.child.kill('SIGKILL');
      }
    });
    expect(killedAt, `40 writes never acknowledged (${failed} failed)`).toBeGreaterThan(0);
    const exit = await a.exited;
    expect(exit.signal).toBe('SIGKILL');
    const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
    let found: string[];
    try {
      found = (await sql<{ key: string }[]>`select key from system_config where key like 'cluster.kill.%'`).map((r) => r.key);
    } finally {
      await sql.end();
    }
    const missing = acknowledged.filter((k) => !found.includes(k));
    const verify = await via('GET', '/system/admin/operations/verify');
    figures.sigkill = { acknowledged: acknowledged.length, found: found.length, missing: missing.length, notAcknowledged: failed, auditVerify: verify.json() };
    expect(missing).toEqual([]);
    expect(verify.status, verify.text).toBe(200);
    expect(verify.json().ok).toBe(true);
    expect(b.alive()).toBe(true);
  }, 60_000);
});
