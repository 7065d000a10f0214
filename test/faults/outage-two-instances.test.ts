import type { FastifyInstance } from 'fastify';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../src/app.js';
import { envWith } from '../../src/env.js';
import { generateApiKey } from '../../plugins/api-keys/key-format.js';
import { createTestDatabase, serverUrl, type TestDatabase } from '../helpers/database.js';
import { proxyInFrontOf, type FaultyProxy } from '../helpers/faulty-proxy.js';

/**
 * Two instances on one PostgreSQL reached through a proxy that the test cuts for 5 s under a
 * light write load (issue: "Survive faults", items 2 and 3). Pins:
 * - every request that needs the database answers 503 problem+json within the acquire deadline
 *   (DB_ACQUIRE_TIMEOUT_MS, 2 s) instead of hanging until the database is back;
 * - a write the client was told failed is never committed after the restore;
 * - after the restore both instances are ready and a write succeeds without a restart;
 * - a change made right after the restore reaches the other instance within about a second:
 *   its listener re-subscribes and reloads all state (notifications sent in the gap are lost).
 * The figures are printed at the end (the closing note reports them); bounds asserted here
 * are loose ceilings that the old behaviour (15 s hangs, 6 s propagation) breaks.
 */
const CUT_MS = 5000;
const ACQUIRE_MS = 2000;
/** Small, so a link frozen under a sent statement is cut (after this plus 2 s) within the test. */
const STATEMENT_MS = 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!serverUrl())('two instances through a PostgreSQL outage', () => {
  let database: TestDatabase;
  let proxy: FaultyProxy;
  let a: FastifyInstance;
  let b: FastifyInstance;
  const adminKey = generateApiKey().token;
  const figures: Record<string, number> = {};
  const call = (app: FastifyInstance, method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) =>
    app.inject({ method, url, payload, headers: { authorization: `Bearer ${adminKey}` } });
  const flagEnabledOn = async (app: FastifyInstance, key: string) =>
    { const res = await call(app, 'GET', `/system/flags/${key}/evaluate?subject=u1`); expect(res.statusCode, res.body).toBe(200); return res.json<{ reason: string }>().reason !== 'DISABLED'; };

  beforeAll(async () => {
    database = await createTestDatabase();
    const proxied = await proxyInFrontOf(database.url!);
    proxy = proxied.proxy;
    const build = () =>
      buildApp({
        env: envWith({
          ADMIN_API_KEY: adminKey,
          DATABASE_URL: proxied.url,
          LOG_LEVEL: 'silent',
          RUN_JOBS: false,
          PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
          READY_DB_TIMEOUT_MS: 500,
          DB_ACQUIRE_TIMEOUT_MS: ACQUIRE_MS,
          DB_STATEMENT_TIMEOUT_MS: STATEMENT_MS,
        }),
        logger: false,
        migrate: false,
      });
    a = await build();
    b = await build();
  });

  afterAll(async () => {
    proxy?.restore();
    await a?.close();
    await b?.close();
    await proxy?.close();
    await database?.drop();
    console.info(`outage figures (ms): ${JSON.stringify(figures)}`);
  });

  it('answers 503 within the deadline during a cut, commits nothing later, and recovers by itself', async () => {
    expect((await call(a, 'POST', '/system/flags', { key: 'blip.flag', type: 'kill-switch', enabled: false })).statusCode).toBe(201);
    await vi.waitFor(async () => expect(await flagEnabledOn(b, 'blip.flag')).toBe(false), { timeout: 2000, interval: 20 });

    proxy.cut();
    const cutAt = Date.now();
    const writes: Array<Promise<{ key: string; status: number; ms: number; type: string | undefined }>> = [];
    let n = 0;
    while (Date.now() - cutAt < CUT_MS) {
      const key = `during.cut.${n++}`;
      const on = n % 2 ? a : b;
      const sent = Date.now();
      writes.push(
        call(on, 'POST', '/system/flags', { key, type: 'release', enabled: true }).then((res) => ({
          key,
          status: res.statusCode,
          ms: Date.now() - sent,
          type: res.statusCode === 503 ? res.json<{ type: string }>().type : undefined,
        })),
      );
      expect((await call(on, 'GET', '/live')).statusCode).toBe(200);
      await sleep(200);
    }
    const reads = await Promise.all([call(a, 'GET', '/system/flags/blip.flag'), call(b, 'GET', '/system/errors')]);
    proxy.restore();
    const restoredAt = Date.now();

    const outcomes = await Promise.all(writes);
    figures.slowestAnswerDuringCut = Math.max(...outcomes.map((o) => o.ms));
    for (const o of outcomes) {
      expect(o.status, o.key).toBe(503);
      expect(o.type, o.key).toBe('/problems/database-unavailable');
      expect(o.ms, o.key).toBeLessThan(ACQUIRE_MS + 1500);
    }
    for (const r of reads) {
      expect(r.statusCode).toBe(503);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(r.headers['retry-after']).toBeDefined();
    }

    await vi.waitFor(async () => {
      expect((await call(a, 'GET', '/ready')).statusCode).toBe(200);
      expect((await call(b, 'GET', '/ready')).statusCode).toBe(200);
    }, { timeout: 10_000, interval: 20 });
    figures.readyAfterRestore = Date.now() - restoredAt;

    await vi.waitFor(async () => {
      expect((await call(a, 'POST', '/system/flags', { key: 'after.restore', type: 'release' })).statusCode).toBe(201);
    }, { timeout: 10_000, interval: 20 });
    figures.firstWriteAfterRestore = Date.now() - restoredAt;

    // Flipped on one instance right after the recovery: the other hears it.
    const flippedAt = Date.now();
    expect((await call(a, 'PATCH', '/system/flags/blip.flag', { enabled: true })).statusCode).toBe(200);
    await vi.waitFor(async () => expect(await flagEnabledOn(b, 'blip.flag')).toBe(true), { timeout: 3000, interval: 10 });
    figures.flagReachedOtherInstance = Date.now() - flippedAt;

    // Every write answered 503 stays unwritten: give a late commit time to happen, then look.
    await sleep(1500);
    const direct = postgres(database.url!, { max: 1, onnotice: () => {} });
    try {
      const rows = await direct<{ key: string }[]>`select key from feature_flags where key like 'during.cut.%'`;
      expect(rows).toEqual([]);
    } finally {
      await direct.end();
    }
  });

  it('answers 503 within the deadline while the database hangs, and commits none of it later', async () => {
    proxy.hang();
    // Pooled connections opened before the hang still work: drop them as a partition would.
    proxy.cut();
    proxy.hang();
    const sent = Date.now();
    const outcomes = await Promise.all(
      ['hang.write.1', 'hang.write.2', 'hang.write.3'].map(async (key, i) => {
        await sleep(i * 300);
        const started = Date.now();
        const res = await call(i % 2 ? b : a, 'POST', '/system/flags', { key, type: 'release' });
        return { key, status: res.statusCode, ms: Date.now() - started };
      }),
    );
    figures.slowestAnswerDuringHang = Math.max(...outcomes.map((o) => o.ms));
    for (const o of outcomes) {
      expect(o.status, o.key).toBe(503);
      expect(o.ms, o.key).toBeLessThan(ACQUIRE_MS + 1500);
    }
    expect(Date.now() - sent).toBeLessThan(ACQUIRE_MS * 3);
    proxy.restore();
    await vi.waitFor(async () => {
      expect((await call(a, 'GET', '/ready')).statusCode).toBe(200);
      expect((await call(b, 'GET', '/ready')).statusCode).toBe(200);
      expect((await call(b, 'POST', '/system/flags', { key: `after.hang.${Date.now()}`, type: 'release' })).statusCode).toBe(201);
    }, { timeout: 10_000, interval: 50 });
    await sleep(1000);
    const direct = postgres(database.url!, { max: 1, onnotice: () => {} });
    try {
      expect(await direct`select key from feature_flags where key like 'hang.write.%'`).toEqual([]);
    } finally {
      await direct.end();
    }
  });

  it('reports the state listener in /ready?verbose and /metrics', async () => {
    const ready = (await call(b, 'GET', '/ready?verbose')).json<{ checks: Array<{ name: string; ok: boolean }> }>();
    expect(ready.checks).toContainEqual(expect.objectContaining({ name: 'state-listener', ok: true }));
    const metrics = (await call(b, 'GET', '/metrics')).body;
    expect(metrics).toMatch(/^valhalla_state_listener_up(\{[^}]*\})? 1$/m);
    // Renewed by the driver or, when its own re-subscribe failed during the cut, by the heartbeat.
    expect(metrics).toMatch(/^valhalla_state_listener_resubscribes_total\{[^}]*reason="(after-outage|driver-reconnect|heartbeat-missed)"[^}]*\} [1-9]/m);
  });

  it('a partition: a request in flight on a frozen connection is answered, not held forever, and both instances become ready', async () => {
    // A write in flight when the link freezes: sent, never answered. Before the watchdog it was
    // held until the client gave up (minutes); now its connection is cut after
    // DB_STATEMENT_TIMEOUT_MS + 2 s of silence.
    const inFlight = call(a, 'POST', '/system/flags', { key: 'frozen.write', type: 'release' });
    await sleep(5);
    proxy.freeze();
    const frozenAt = Date.now();
    expect((await call(b, 'POST', '/system/flags', { key: 'during.freeze', type: 'release' })).statusCode).toBe(503);
    await sleep(2000);
    proxy.restore();
    const restoredAt = Date.now();
    const answered = await inFlight;
    figures.inFlightAnsweredAfterFreeze = Date.now() - frozenAt;
    if (![201, 503].includes(answered.statusCode)) {
      // Why this instance refused or failed it: its answer, and its authentication figures.
      const auth = (await call(a, 'GET', '/metrics')).body.split('\n').filter((l) => l.startsWith('valhalla_auth_failures_total') || l.startsWith('valhalla_api_keys_loaded'));
      expect.fail(`in-flight write answered ${answered.statusCode} ${answered.body}; ${auth.join('; ')}`);
    }
    expect(figures.inFlightAnsweredAfterFreeze).toBeLessThan(STATEMENT_MS + 2000 + 3000);
    await vi.waitFor(async () => {
      expect((await call(a, 'GET', '/ready')).statusCode).toBe(200);
      expect((await call(b, 'GET', '/ready')).statusCode).toBe(200);
    }, { timeout: 20_000, interval: 50 });
    figures.readyAfterPartition = Date.now() - restoredAt;
  }, 60_000);
});
