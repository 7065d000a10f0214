import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { authHeader, createTestApp, type TestApp } from '../../test/helpers/app.js';
import type { Mode } from '../maintenance/index.js';
import { maintenanceWindows } from '../maintenance/table.js';
import { ADMIN_FIXTURE, FIXTURE, shieldFixturePack } from './test-routes.js';

const WRITES = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;

let t: TestApp;
let readKey: string; // maintenance:read + system:read
let writeKey: string; // maintenance:write + system:write
beforeAll(async () => {
  // No sampled spans and no timed last-use flush: nothing but the requests themselves may reach
  // the database during the burst test.
  t = await createTestApp({ TRACE_SAMPLE_RATE: 0, BATCH_FLUSH_INTERVAL_MS: 60_000 }, { extraPacks: [shieldFixturePack] });
  readKey = (await t.keyWith(['maintenance:read', 'system:read'])).token;
  writeKey = (await t.keyWith(['maintenance:write', 'system:write'])).token;
});
afterAll(async () => t?.close());

/** Sets the mode straight through the service: in maintenance mode the test's own request would be shielded too. */
async function setMode(mode: Mode, untilSeconds?: number) {
  const m = t.app.maintenance;
  await t.app.db.transaction(async (tx) => {
    await m.service.insertSetting(tx, {
      mode,
      reason: `test ${mode}`,
      source: 'manual',
      actor: { type: 'system', id: 'test', keyId: null },
      since: new Date(),
      until: untilSeconds === undefined ? null : new Date(Date.now() + untilSeconds * 1000),
    });
    await tx.delete(maintenanceWindows);
  });
  await m.entry.reload();
}
beforeEach(() => setMode('normal'));

const call = (method: InjectOptions['method'], url: string, token?: string) =>
  t.inject({ method, url, ...(method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? {} : { payload: {} }), headers: token ? authHeader(token) : {} });

describe('read-only shield (UJ)', () => {
  it('lets everything through in normal mode', async () => {
    for (const method of ['GET', ...WRITES] as const) expect((await call(method, `${FIXTURE}/items`)).statusCode, method).toBe(200);
  });

  it('refuses writes with 503 read-only in read_only mode, with Retry-After when the end is known', async () => {
    await setMode('read_only', 100);
    for (const method of WRITES) {
      const res = await call(method, `${FIXTURE}/items`);
      expect(res.statusCode, method).toBe(503);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ type: '/problems/read-only', status: 503, mode: 'read_only', instance: `${FIXTURE}/items` });
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(98);
      expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(100);
    }
    expect((await call('POST', `${FIXTURE}/plain`)).statusCode).toBe(503);
    // Reads answer: an ordinary /system read, HEAD, a kernel read, the probes.
    expect((await call('GET', `${FIXTURE}/items`)).statusCode).toBe(200);
    expect((await call('HEAD', `${FIXTURE}/items`)).statusCode).toBe(200);
    expect((await call('GET', '/system/info')).statusCode).toBe(200);
    for (const url of ['/live', '/metrics', '/docs/json', '/problems/read-only']) expect((await t.app.inject({ method: 'GET', url })).statusCode, url).toBe(200);

    await setMode('read_only');
    expect((await call('POST', `${FIXTURE}/items`)).headers['retry-after']).toBeUndefined();
  });

  it('refuses everything but probes, docs and opted-out routes with 503 maintenance in maintenance mode', async () => {
    await setMode('maintenance', 60);
    for (const method of ['GET', 'HEAD', ...WRITES] as const) {
      const res = await call(method, `${FIXTURE}/items`);
      expect(res.statusCode, method).toBe(503);
      if (method !== 'HEAD') expect(res.json()).toMatchObject({ type: '/problems/maintenance', mode: 'maintenance' });
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect((await call('GET', '/system/info')).statusCode).toBe(503);
    for (const url of ['/live', '/ready', '/metrics', '/docs/json', '/problems/maintenance']) expect((await t.app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
  });

  it('never touches routes that opt out with config.shield: false', async () => {
    for (const mode of ['read_only', 'maintenance'] as const) {
      await setMode(mode);
      expect((await call('GET', `${FIXTURE}/open`)).statusCode, mode).toBe(200);
      expect((await call('POST', `${FIXTURE}/open`)).statusCode, mode).toBe(200);
    }
  });

  it('leaves unknown routes alone: 404 and 405 stay what they are', async () => {
    for (const mode of ['read_only', 'maintenance'] as const) {
      await setMode(mode);
      expect((await call('GET', '/no-such-route')).statusCode, mode).toBe(404);
      expect((await call('POST', '/system/no-such-route')).statusCode, mode).toBe(404);
      expect((await call('PUT', '/live')).statusCode, mode).toBe(405);
    }
  });

  it('keeps the maintenance endpoints usable for callers who may change the mode', async () => {
    await setMode('read_only');
    // admin (the test app's key) and maintenance:write switch it back; reads stay open to maintenance:read.
    expect((await call('GET', '/system/maintenance', readKey)).statusCode).toBe(200);
    expect((await call('POST', `${FIXTURE}/items`, writeKey)).statusCode).toBe(503);
    const back = await t.inject({ method: 'POST', url: '/system/maintenance/state', payload: { mode: 'normal', reason: 'back' }, headers: authHeader(writeKey) });
    expect(back.statusCode).toBe(200);
    expect(back.json().effective.mode).toBe('normal');

    await setMode('maintenance');
    expect((await call('GET', '/system/maintenance', readKey)).statusCode).toBe(503);
    expect((await call('GET', '/system/maintenance', writeKey)).statusCode).toBe(200);
    expect((await call('GET', '/system/maintenance/windows', writeKey)).statusCode).toBe(200);
    expect((await call('GET', `${FIXTURE}/items`, writeKey)).statusCode).toBe(503);
    // admin: the maintenance and admin endpoints answer; ordinary routes do not, even for admin.
    expect((await call('GET', '/system/maintenance')).statusCode).toBe(200);
    expect((await call('GET', ADMIN_FIXTURE)).statusCode).toBe(200);
    expect((await call('GET', `${FIXTURE}/items`)).statusCode).toBe(503);
    const off = await t.inject({ method: 'POST', url: '/system/maintenance/state', payload: { mode: 'normal', reason: 'maintenance over' } });
    expect(off.statusCode).toBe(200);
    expect((await call('GET', `${FIXTURE}/items`, readKey)).statusCode).toBe(200);
  });

  it('lets authentication answer first: no key is 401 whatever the mode', async () => {
    await setMode('maintenance');
    expect((await t.app.inject({ method: 'GET', url: '/system/maintenance' })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/live' })).statusCode).toBe(200);
  });

  it('switches on at a window start and off at its end, by itself', async () => {
    const startsAt = new Date(Date.now() + 1000).toISOString();
    const endsAt = new Date(Date.now() + 3000).toISOString();
    const res = await t.inject({ method: 'POST', url: '/system/maintenance/windows', payload: { mode: 'read_only', reason: 'scheduled', startsAt, endsAt } });
    expect(res.statusCode).toBe(201);
    expect((await call('POST', `${FIXTURE}/items`)).statusCode).toBe(200);
    await vi.waitFor(async () => expect((await call('POST', `${FIXTURE}/items`)).statusCode).toBe(503), { timeout: 3000, interval: 50 });
    const during = await call('DELETE', `${FIXTURE}/items`);
    expect(during.json()).toMatchObject({ type: '/problems/read-only', until: endsAt });
    expect(Number(during.headers['retry-after'])).toBeLessThanOrEqual(3);
    await vi.waitFor(async () => expect((await call('POST', `${FIXTURE}/items`)).statusCode).toBe(200), { timeout: 4000, interval: 50 });
  });

  it('answers from memory: no database query in a burst of shielded and passing requests', async () => {
    await setMode('read_only', 600);
    await call('GET', `${FIXTURE}/items`); // warm up
    await t.app.apiKeys.flushLastUsed();
    const before = t.app.database.queryCount;
    for (let i = 0; i < 50; i++) {
      expect((await call('POST', `${FIXTURE}/items`)).statusCode).toBe(503);
      expect((await call('GET', `${FIXTURE}/items`)).statusCode).toBe(200);
      // Routes of packs registered before the maintenance pack go through the same hooks.
      expect((await call('GET', '/system/info')).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: '/live' })).statusCode).toBe(200);
    }
    expect(t.app.database.queryCount - before).toBe(0);

    await setMode('maintenance', 600);
    const beforeMaintenance = t.app.database.queryCount;
    for (let i = 0; i < 50; i++) expect((await call('GET', `${FIXTURE}/items`)).statusCode).toBe(503);
    expect(t.app.database.queryCount - beforeMaintenance).toBe(0);
    // The counter does count: the reload after a change is three queries.
    const beforeReload = t.app.database.queryCount;
    await t.app.maintenance.entry.reload();
    expect(t.app.database.queryCount - beforeReload).toBe(3);
  });

  it('counts refused requests by mode', async () => {
    const value = async (mode: string) => {
      const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
      const line = text.split('\n').find((l) => l.startsWith('valhalla_shield_blocked_total{') && l.includes(`mode="${mode}"`));
      return Number(line?.split(' ').pop() ?? 0);
    };
    await setMode('read_only');
    const ro = await value('read_only');
    await call('POST', `${FIXTURE}/items`);
    await call('PATCH', `${FIXTURE}/items`);
    expect(await value('read_only')).toBe(ro + 2);
    await setMode('maintenance');
    const mm = await value('maintenance');
    await call('GET', `${FIXTURE}/items`);
    expect(await value('maintenance')).toBe(mm + 1);
  });
});
