import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../src/app.js';
import { envWith } from '../../src/env.js';
import { generateApiKey } from '../../plugins/api-keys/key-format.js';
import { createTestDatabase, serverUrl, type TestDatabase } from '../helpers/database.js';
import { FaultyProxy } from '../helpers/faulty-proxy.js';

const READY_TIMEOUT_MS = 300;

describe.skipIf(!serverUrl())('database outage (PostgreSQL behind a faulty proxy)', () => {
  let database: TestDatabase;
  let proxy: FaultyProxy;
  let app: FastifyInstance;
  const adminKey = generateApiKey().token;
  const get = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${adminKey}` } });

  beforeAll(async () => {
    database = await createTestDatabase();
    const direct = new URL(database.url!);
    proxy = new FaultyProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    const proxied = new URL(database.url!);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(await proxy.listen());
    app = await buildApp({
      env: envWith({ ADMIN_API_KEY: adminKey, DATABASE_URL: proxied.toString(), LOG_LEVEL: 'silent', RUN_JOBS: false, READY_DB_TIMEOUT_MS: READY_TIMEOUT_MS }),
      logger: false,
      migrate: false,
    });
  });

  afterAll(async () => {
    proxy?.restore(); // in case a test failed mid-outage
    // After an outage this takes postgres.js's end timeout (5 s, db/client.ts): 3.4.9 leaves a
    // failed query attached to its connection, so end() waits for it until the timeout.
    await app?.close();
    await proxy?.close();
    await database?.drop();
  });

  it('serves normally through the proxy', async () => {
    expect((await get('/ready')).statusCode).toBe(200);
    expect((await get('/system/errors')).statusCode).toBe(200);
    expect((await get('/system/logs')).statusCode).toBe(200);
  });

  it('keeps /live up and answers 503 problems while the database is cut off', async () => {
    proxy.cut();

    expect((await get('/live')).statusCode).toBe(200);

    const ready = await get('/ready?verbose');
    expect(ready.statusCode).toBe(503);
    expect(ready.headers['content-type']).toMatch(/^application\/problem\+json/);
    const problem = ready.json();
    expect(problem.type).toBe('/problems/service-unavailable');
    expect(problem.detail).toMatch(/database \(unreachable/);
    expect(problem.checks).toContainEqual(expect.objectContaining({ name: 'database', ok: false }));
    // The driver's message (host, port) never reaches this public route.
    expect(ready.body).not.toContain('127.0.0.1');

    const read = await get('/system/errors');
    expect(read.statusCode).toBe(503);
    expect(read.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(read.headers['retry-after']).toBeDefined();
    expect(read.json()).toMatchObject({ type: '/problems/database-unavailable', status: 503, instance: '/system/errors' });

    const logs = await get('/system/logs?level=info');
    expect(logs.statusCode).toBe(503);
    expect(logs.json()).toMatchObject({ type: '/problems/database-unavailable', instance: '/system/logs' });

    const health = await get('/system/health');
    expect(health.statusCode).toBe(200);
    expect(health.json()).toMatchObject({ status: 'degraded', components: { database: { ok: false } } });
    expect((await get('/metrics')).statusCode).toBe(200);
  });

  it('fails /ready within READY_DB_TIMEOUT_MS when the database hangs', async () => {
    proxy.hang();

    expect((await get('/live')).statusCode).toBe(200);
    // A connection attempt begun while the proxy refused (the previous test) can still fail with
    // "unreachable" once; from then on the check times out against the silent proxy.
    await vi.waitFor(
      async () => {
        const ready = await get('/ready');
        expect(ready.statusCode).toBe(503);
        expect(ready.json().detail).toContain(`database (database did not answer within ${READY_TIMEOUT_MS} ms)`);
      },
      { timeout: 5000, interval: 50 },
    );

    // A read waits for the driver's connect timeout, then answers 503 rather than hanging.
    const read = await get('/system/errors');
    expect(read.statusCode).toBe(503);
    expect(read.json().type).toBe('/problems/database-unavailable');
  });

  it('recovers by itself when the database is back, without rebuilding the app', async () => {
    proxy.restore();

    await vi.waitFor(
      async () => {
        expect((await get('/ready')).statusCode).toBe(200);
      },
      { timeout: 15_000, interval: 100 },
    );
    const read = await get('/system/errors');
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual({ items: [], nextCursor: null });
    expect((await get('/system/logs')).statusCode).toBe(200);
    // The state listener re-subscribes once the database answers again (src/state-cache.ts).
    await vi.waitFor(
      async () => {
        const health = (await get('/system/health')).json();
        expect(health.status, JSON.stringify(health.components.stateCache.listener)).toBe('ok');
      },
      { timeout: 5000, interval: 50 },
    );
  });
});
