import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeader, createTestApp, type TestApp } from '../../test/helpers/app.js';
import { allPacks } from '../index.js';

// Runs once the api-keys pack is in the list (until then every route is open).
const authenticated = allPacks.some((p) => p.meta.name === 'api-keys');

describe.skipIf(!authenticated)('admin and route index access', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => t?.close());

  const AUDIT = ['/system/admin/operations', '/system/admin/operations/verify', '/system/admin/operations/1'];
  const SYSTEM_READ = ['/system/admin', '/system/routes', '/system/routes/versions', `/system/routes/diff?from=x&to=y`];

  it('answers 401 without a key on every /system route of both packs, and serves the console', async () => {
    for (const url of [...AUDIT, ...SYSTEM_READ]) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json().type).toBe('/problems/unauthorized');
    }
    for (const url of ['/console', '/console/app.js', '/console/console.css']) expect((await t.app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
  });

  it('answers 403 to a system:write key on the audit trail, and leaves the trail out of its overview', async () => {
    const { token } = await t.keyWith(['system:write']);
    for (const url of AUDIT) {
      const res = await t.inject({ method: 'GET', url, headers: authHeader(token) });
      expect(res.statusCode, url).toBe(403);
      expect(res.json().type).toBe('/problems/forbidden');
    }
    // system:write implies system:read, which the overview needs, but not audit:read.
    const overview = await t.inject({ method: 'GET', url: '/system/admin', headers: authHeader(token) });
    expect(overview.statusCode).toBe(200);
    expect(overview.json().recentOperations).toBeUndefined();
    expect((await t.inject({ method: 'GET', url: '/system/admin' })).json().recentOperations).toBeDefined();
  });

  it('lets an audit:read key read the trail but not the overview or the route index', async () => {
    const { token } = await t.keyWith(['audit:read']);
    expect((await t.inject({ method: 'GET', url: '/system/admin/operations', headers: authHeader(token) })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/system/admin/operations/verify', headers: authHeader(token) })).statusCode).toBe(200);
    for (const url of SYSTEM_READ) expect((await t.inject({ method: 'GET', url, headers: authHeader(token) })).statusCode, url).toBe(403);
  });

  it('shows an API write with the key that made it and its correlation id', async () => {
    const { token, keyId, clientId } = await t.keyWith(['admin']);
    const res = await t.inject({
      method: 'POST',
      url: '/system/api-clients',
      payload: { name: `audited-${Date.now()}`, owner: 'tests', scopes: ['flags:read'] },
      headers: { ...authHeader(token), 'x-request-id': 'admin-access-write-1' },
    });
    expect(res.statusCode).toBe(201);
    const page = (await t.inject({ method: 'GET', url: '/system/admin/operations?correlationId=admin-access-write-1' })).json();
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({
      operation: 'api-client.create',
      targetType: 'api-client',
      targetId: String(res.json().id),
      actorType: 'client',
      actorId: String(clientId),
      keyId,
      correlationId: 'admin-access-write-1',
      result: 'success',
    });
    const byKey = (await t.inject({ method: 'GET', url: `/system/admin/operations?keyId=${keyId}` })).json();
    expect(byKey.items.map((o: { operation: string }) => o.operation)).toEqual(['api-client.create']);
    expect((await t.inject({ method: 'GET', url: '/system/admin/operations/verify' })).json().ok).toBe(true);
  });

  it('answers 403 to a key with an unrelated scope', async () => {
    const { token } = await t.keyWith(['flags:read']);
    for (const url of [...AUDIT, ...SYSTEM_READ]) expect((await t.inject({ method: 'GET', url, headers: authHeader(token) })).statusCode, url).toBe(403);
  });
});
