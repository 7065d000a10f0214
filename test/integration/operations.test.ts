import { and, eq } from 'drizzle-orm';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { authHeader, createTestApp, type TestApp } from '../helpers/app.js';

// The operations packs together: the change freeze (UE) over every pack's control-plane
// writes, and the shield (UJ) over every pack's routes, as the pack list loads them.

let t: TestApp;
let flagsWriter: string; // flags:write, config:write, rate-limits:write, deployments:write, no admin
let reader: string; // system:read
beforeAll(async () => {
  t = await createTestApp({ TRACE_SAMPLE_RATE: 0 });
  flagsWriter = (await t.keyWith(['flags:write', 'config:write', 'rate-limits:write', 'deployments:write'])).token;
  reader = (await t.keyWith(['system:read'])).token;
});
afterAll(async () => t?.close());

const freeze = (enabled: boolean) =>
  t.inject({ method: 'POST', url: '/system/maintenance/freeze', payload: { enabled, reason: enabled ? 'release week' : 'released' } });
const setMode = (mode: 'normal' | 'read_only' | 'maintenance') =>
  t.inject({ method: 'POST', url: '/system/maintenance/state', payload: { mode, reason: `test ${mode}` } });

beforeEach(async () => {
  expect((await freeze(false)).statusCode).toBe(200);
  expect((await setMode('normal')).statusCode).toBe(200);
});

let seq = 0;
/** One control-plane write per pack that the freeze covers. */
const controlPlaneWrites = (): Array<{ name: string; request: InjectOptions }> => {
  const n = ++seq;
  return [
    { name: 'flag create', request: { method: 'POST', url: '/system/flags', payload: { key: `frozen-${n}`, type: 'release' } } },
    { name: 'config put', request: { method: 'PUT', url: `/system/config/frozen.entry_${n}`, payload: { value: n } } },
    { name: 'rate-limit create', request: { method: 'POST', url: '/system/rate-limits', payload: { scope: 'ip', match: `10.9.${n}.1`, max: 5, windowSeconds: 60 } } },
    {
      name: 'deployment profile create',
      request: { method: 'POST', url: '/system/deployment/profiles', payload: { name: `frozen-${n}`, environment: 'staging', baseUrl: 'http://127.0.0.1:9', smokeChecks: [{ name: 'live', path: '/live', expectedStatus: 200 }] } },
    },
  ];
};

describe('change freeze across packs', () => {
  it('declares freeze on the control-plane writes of config, flags, rate limits and deployments', () => {
    const frozen = t.app.routeCatalog.filter((r) => r.config.freeze === true).map((r) => `${r.method} ${r.url}`);
    for (const expected of ['POST /system/flags', 'PUT /system/config/:key', 'POST /system/rate-limits', 'POST /system/deployment/profiles', 'POST /system/deployment/profiles/:id/deployments']) {
      expect(frozen).toContain(expected);
    }
    expect(frozen.some((r) => r.startsWith('GET '))).toBe(false);
  });

  it('answers 423 to each while frozen, and lets them through again after', async () => {
    expect((await freeze(true)).statusCode).toBe(200);
    for (const { name, request } of controlPlaneWrites()) {
      const res = await t.inject({ ...request, headers: authHeader(flagsWriter) });
      expect(res.statusCode, name).toBe(423);
      expect(res.headers['content-type'], name).toMatch(/^application\/problem\+json/);
      expect(res.json(), name).toMatchObject({ type: '/problems/locked', status: 423 });
    }
    // Reads are not frozen.
    expect((await t.inject({ method: 'GET', url: '/system/flags', headers: authHeader(flagsWriter) })).statusCode).toBe(200);
    expect((await freeze(false)).statusCode).toBe(200);
    for (const { name, request } of controlPlaneWrites()) {
      const res = await t.inject({ ...request, headers: authHeader(flagsWriter) });
      expect([200, 201], `${name}: ${res.body}`).toContain(res.statusCode);
    }
  });

  it('lets an admin through with an explicit override, and audits it with the reason', async () => {
    expect((await freeze(true)).statusCode).toBe(200);
    for (const { name, request } of controlPlaneWrites()) {
      const withoutOverride = await t.inject(request);
      expect(withoutOverride.statusCode, `${name} (admin, no override)`).toBe(423);
      const overridden = await t.inject({ ...request, headers: { ...authHeader(t.adminKey), 'x-freeze-override': `hotfix for ${name}` } });
      expect([200, 201], `${name}: ${overridden.body}`).toContain(overridden.statusCode);
      const [entry] = await t.app.db
        .select()
        .from(adminOperations)
        .where(and(eq(adminOperations.operation, 'freeze.override'), eq(adminOperations.reason, `hotfix for ${name}`)));
      expect(entry, name).toMatchObject({ actorType: 'client', keyId: t.adminKey.slice(4, 16) });
    }
  });

  it('refuses the override to a caller without admin', async () => {
    expect((await freeze(true)).statusCode).toBe(200);
    const [first] = controlPlaneWrites();
    const res = await t.inject({ ...first!.request, headers: { ...authHeader(flagsWriter), 'x-freeze-override': 'I am in a hurry' } });
    expect(res.statusCode).toBe(403);
  });
});

describe('shield across packs', () => {
  it('in read_only: reads and reads-sent-as-POST answer, every pack refuses writes', async () => {
    expect((await setMode('read_only')).statusCode).toBe(200);
    expect((await t.inject({ method: 'POST', url: '/system/logs/query', payload: {}, headers: authHeader(reader) })).statusCode).toBe(200);
    expect((await t.inject({ method: 'POST', url: '/system/flags/evaluate', payload: { context: { key: 'user-1' } }, headers: authHeader(reader) })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/system/config', headers: authHeader(reader) })).statusCode).toBe(200);
    for (const { name, request } of controlPlaneWrites()) {
      const res = await t.inject({ ...request, headers: authHeader(flagsWriter) });
      expect(res.statusCode, name).toBe(503);
      expect(res.json(), name).toMatchObject({ type: '/problems/read-only' });
    }
    const keyWrite = await t.inject({ method: 'POST', url: '/system/api-clients', payload: { name: 'during-read-only', owner: 'x', scopes: ['system:read'] } });
    expect(keyWrite.statusCode).toBe(503);
  });

  it('in maintenance: only probes, docs and, for admin callers, the maintenance and admin endpoints answer', async () => {
    expect((await setMode('maintenance')).statusCode).toBe(200);
    for (const url of ['/live', '/metrics', '/docs/json', '/problems']) expect((await t.app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/system/admin' })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/system/admin/operations/verify' })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/system/admin', headers: authHeader(reader) })).statusCode).toBe(503);
    for (const url of ['/system/flags', '/system/config', '/system/logs', '/system/routes']) {
      const res = await t.inject({ method: 'GET', url, headers: authHeader(reader) });
      expect(res.statusCode, url).toBe(503);
      expect(res.json(), url).toMatchObject({ type: '/problems/maintenance' });
    }
    expect((await t.inject({ method: 'POST', url: '/system/flags/evaluate', payload: { context: { key: 'u' } }, headers: authHeader(reader) })).statusCode).toBe(503);
    expect((await setMode('normal')).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/system/flags', headers: authHeader(reader) })).statusCode).toBe(200);
  });
});
