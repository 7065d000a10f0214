import { timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../src/app.js';
import { adminOperations } from '../../src/audit/table.js';
import { definePack } from '../../src/pack.js';
import { authHeader, createTestApp, testEnv, type TestApp } from '../../test/helpers/app.js';
import { createTestDatabase, serverUrl } from '../../test/helpers/database.js';
import { API_KEY_PATTERN, formatApiKey, generateApiKey, parseApiKey } from './key-format.js';
import { hashSecret } from './service.js';
import { apiKeys } from './table.js';
import { buildVerifier } from './verifier.js';

let t: TestApp;
beforeAll(async () => {
  // Nothing on a timer may reach the database during the no-query burst: no sampled spans, no
  // timed flushes or reloads (the test flushes last-use times itself).
  t = await createTestApp({ TRACE_SAMPLE_RATE: 0, BATCH_FLUSH_INTERVAL_MS: 60_000, STATE_RELOAD_INTERVAL_MS: 3_600_000 });
});
afterAll(async () => t?.close());

const as = (token: string) => ({ headers: authHeader(token) });
const get = (url: string, token: string, app: FastifyInstance = t.app) => t.inject({ method: 'GET', url, ...as(token) }, app);

async function newClient(body: Record<string, unknown> = {}) {
  const res = await t.inject({ method: 'POST', url: '/system/api-clients', payload: { name: `c-${Math.random().toString(36).slice(2)}`, owner: 'team-a', scopes: ['system:read'], ...body } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ id: number; name: string; scopes: string[] }>();
}
async function newKey(clientId: number, body: Record<string, unknown> = {}) {
  const res = await t.inject({ method: 'POST', url: `/system/api-clients/${clientId}/keys`, payload: { name: 'k', ...body } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ token: string; keyId: string; scopes: string[]; expiresAt: string | null }>();
}

function expectUnauthorized(res: Awaited<ReturnType<typeof get>>) {
  expect(res.statusCode).toBe(401);
  expect(res.headers['content-type']).toContain('application/problem+json');
  expect(res.headers['www-authenticate']).toBe('Bearer realm="valhalla"');
  const body = res.json();
  expect(body).toMatchObject({ type: expect.stringContaining('unauthorized'), status: 401 });
  // The same words whatever was wrong: nothing tells a prober which part failed.
  expect(body.detail).toBe('A valid API key is required: send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`.');
}

describe('key format', () => {
  it('is recognisable (prefix, key id, secret, checksum) and checksummed', () => {
    const key = generateApiKey();
    expect(key.token).toMatch(API_KEY_PATTERN);
    expect(parseApiKey(key.token)).toEqual({ keyId: key.keyId, secret: key.secret });
    const flipped = key.token.slice(0, 20) + (key.token[20] === 'a' ? 'b' : 'a') + key.token.slice(21);
    expect(parseApiKey(flipped)).toBeNull();
    expect(parseApiKey(`${key.token}x`)).toBeNull();
    expect(parseApiKey('vhk_short')).toBeNull();
  });

  it('is stored only as a hash and shown only at creation', async () => {
    const client = await newClient();
    const key = await newKey(client.id);
    const [row] = await t.app.db.select().from(apiKeys).where(eq(apiKeys.keyId, key.keyId));
    const secret = parseApiKey(key.token)!.secret;
    expect(row!.secretHash).toBe(hashSecret(secret));
    expect(JSON.stringify(row)).not.toContain(secret);
    const read = await t.inject({ method: 'GET', url: `/system/api-clients/${client.id}/keys/${key.keyId}` });
    expect(read.statusCode).toBe(200);
    expect(read.body).not.toContain(secret);
    expect(read.json()).not.toHaveProperty('token');
    const audit = await t.app.db.select().from(adminOperations).where(eq(adminOperations.targetId, key.keyId));
    expect(JSON.stringify(audit)).not.toContain(secret);
  });
});

describe('authentication (401)', () => {
  it('refuses a missing key, a malformed one, another scheme, and an unknown key', async () => {
    expectUnauthorized(await t.app.inject({ method: 'GET', url: '/system/info' }));
    expectUnauthorized(await get('/system/info', 'not-a-key'));
    expectUnauthorized(await t.app.inject({ method: 'GET', url: '/system/info', headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } }));
    expectUnauthorized(await get('/system/info', generateApiKey().token));
    expectUnauthorized(await t.app.inject({ method: 'GET', url: '/system/info', headers: { 'x-api-key': 'vhk_nope' } }));
  });

  it('refuses a forged key: a real key id with a made-up secret and a valid checksum', async () => {
    const client = await newClient();
    const real = await newKey(client.id);
    const forged = generateApiKey();
    const token = formatApiKey(real.keyId, forged.secret);
    expect(parseApiKey(token)).toEqual({ keyId: real.keyId, secret: forged.secret });
    expectUnauthorized(await get('/system/info', token));
    expect((await get('/system/info', real.token)).statusCode).toBe(200);
  });

  it('accepts the key as Bearer (any case) or X-API-Key', async () => {
    const client = await newClient();
    const key = await newKey(client.id);
    expect((await t.inject({ method: 'GET', url: '/system/info', headers: { authorization: `bearer ${key.token}` } })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/system/info', headers: { 'x-api-key': key.token } })).statusCode).toBe(200);
  });

  it('refuses an expired key', async () => {
    const client = await newClient();
    const key = await newKey(client.id, { expiresAt: new Date(Date.now() + 1500).toISOString() });
    expect((await get('/system/info', key.token)).statusCode).toBe(200);
    await vi.waitFor(async () => expectUnauthorized(await get('/system/info', key.token)), { timeout: 4000, interval: 100 });
  });

  it('refuses every key of a suspended client, and accepts them again when reactivated', async () => {
    const client = await newClient();
    const key = await newKey(client.id);
    expect((await get('/system/info', key.token)).statusCode).toBe(200);
    const suspend = await t.inject({ method: 'PATCH', url: `/system/api-clients/${client.id}`, payload: { status: 'suspended', reason: 'leaked in a log' } });
    expect(suspend.statusCode).toBe(200);
    expectUnauthorized(await get('/system/info', key.token));
    await t.inject({ method: 'PATCH', url: `/system/api-clients/${client.id}`, payload: { status: 'active' } });
    expect((await get('/system/info', key.token)).statusCode).toBe(200);
    const ops = await t.app.db.select({ operation: adminOperations.operation, reason: adminOperations.reason }).from(adminOperations).where(eq(adminOperations.targetId, String(client.id)));
    expect(ops).toEqual(expect.arrayContaining([{ operation: 'api-client.suspend', reason: 'leaked in a log' }, { operation: 'api-client.reactivate', reason: null }]));
  });

  it('lets public routes through without a key', async () => {
    for (const url of ['/live', '/ready', '/metrics', '/problems', '/docs/json']) {
      expect((await t.app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
  });
});

describe('scopes (403)', () => {
  it('refuses a key without the route scope, naming the scope', async () => {
    const client = await newClient({ scopes: ['clients:read'] });
    const key = await newKey(client.id);
    const res = await get('/system/info', key.token);
    expect(res.statusCode).toBe(403);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ status: 403, requiredScope: 'system:read' });
    expect((await get('/system/api-clients', key.token)).statusCode).toBe(200);
  });

  it('lets system:read read every area but write none, and only admin manage keys', async () => {
    const client = await newClient({ scopes: ['system:read'] });
    const key = await newKey(client.id);
    expect((await get('/system/api-clients', key.token)).statusCode).toBe(200);
    const write = await t.inject({ method: 'POST', url: '/system/api-clients', payload: { name: 'escalate', owner: 'x', scopes: ['admin'] }, ...as(key.token) });
    expect(write.statusCode).toBe(403);
    expect(write.json()).toMatchObject({ requiredScope: 'admin' });
  });

  it("gives a key only its client's scopes, and narrowing the client narrows its keys at once", async () => {
    const client = await newClient({ scopes: ['system:read', 'clients:read'] });
    const refused = await t.inject({ method: 'POST', url: `/system/api-clients/${client.id}/keys`, payload: { name: 'k', scopes: ['admin'] } });
    expect(refused.statusCode).toBe(422);
    expect(refused.json().detail).toContain('admin');
    const key = await newKey(client.id);
    expect(key.scopes).toEqual(['system:read', 'clients:read']);
    expect((await get('/system/info', key.token)).statusCode).toBe(200);
    await t.inject({ method: 'PATCH', url: `/system/api-clients/${client.id}`, payload: { scopes: ['clients:read'] } });
    expect((await get('/system/info', key.token)).statusCode).toBe(403);
    expect((await get('/system/api-clients', key.token)).statusCode).toBe(200);
  });
});

// Issue 10, item 7: the seed lists GET/POST /system/api-clients; /system/clients was ours.
describe('the seed\'s path /system/api-clients', () => {
  it('serves clients, keys, rotate and revoke under /system/api-clients only', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
    const paths = Object.keys(doc.paths).filter((p) => p.includes('clients'));
    expect(paths.sort()).toEqual(
      [
        '/system/api-clients',
        '/system/api-clients/{id}',
        '/system/api-clients/{id}/keys',
        '/system/api-clients/{id}/keys/{keyId}',
        '/system/api-clients/{id}/keys/{keyId}/revoke',
        '/system/api-clients/{id}/keys/{keyId}/rotate',
      ].sort(),
    );
    expect(Object.keys(doc.paths['/system/api-clients']!).sort()).toEqual(['get', 'post']);

    const created = await t.inject({ method: 'POST', url: '/system/api-clients', payload: { name: 'seed-path-client', owner: 'tests', scopes: ['system:read'] } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.headers.location).toBe(`/system/api-clients/${created.json().id}`);
    const key = await t.inject({ method: 'POST', url: `/system/api-clients/${created.json().id}/keys`, payload: { name: 'k', scopes: ['system:read'] } });
    expect(key.headers.location).toBe(`/system/api-clients/${created.json().id}/keys/${key.json().keyId}`);
    expect((await t.inject({ method: 'GET', url: '/system/api-clients' })).json().items.map((c: { name: string }) => c.name)).toContain('seed-path-client');

    for (const [method, url] of [['GET', '/system/clients'], ['POST', '/system/clients'], ['GET', `/system/clients/${created.json().id}`]] as const) {
      const res = await t.inject({ method, url, ...(method === 'POST' ? { payload: {} } : {}) });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
    }
  });
});

describe('key lifecycle', () => {
  it('create → use → rotate → both work in the grace period → old refused after it → revoke', async () => {
    const client = await newClient();
    const key = await newKey(client.id);
    expect((await get('/system/info', key.token)).statusCode).toBe(200);

    const rotated = await t.inject({ method: 'POST', url: `/system/api-clients/${client.id}/keys/${key.keyId}/rotate`, payload: { graceSeconds: 1, reason: 'quarterly' } });
    expect(rotated.statusCode).toBe(201);
    const { old, replacement } = rotated.json<{ old: { replacedBy: string; expiresAt: string }; replacement: { token: string; keyId: string } }>();
    expect(rotated.headers.location).toBe(`/system/api-clients/${client.id}/keys/${replacement.keyId}`);
    expect(rotated.headers['cache-control']).toBe('no-store');
    expect(old.replacedBy).toBe(replacement.keyId);
    expect((await get('/system/info', key.token)).statusCode).toBe(200);
    expect((await get('/system/info', replacement.token)).statusCode).toBe(200);
    await vi.waitFor(async () => expectUnauthorized(await get('/system/info', key.token)), { timeout: 4000, interval: 100 });
    expect((await get('/system/info', replacement.token)).statusCode).toBe(200);

    const revoked = await t.inject({ method: 'POST', url: `/system/api-clients/${client.id}/keys/${replacement.keyId}/revoke`, payload: { reason: 'done' } });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ status: 'revoked', revokedReason: 'done' });
    expectUnauthorized(await get('/system/info', replacement.token));

    const listed = await t.inject({ method: 'GET', url: `/system/api-clients/${client.id}/keys` });
    expect(listed.json().items.map((k: { keyId: string; status: string }) => [k.keyId, k.status])).toEqual([
      [key.keyId, 'expired'],
      [replacement.keyId, 'revoked'],
    ]);
    expect((await t.inject({ method: 'GET', url: `/system/api-clients/${client.id}/keys?status=revoked` })).json().items).toHaveLength(1);
  });

  it('revokes at once when rotating with no grace period', async () => {
    const client = await newClient();
    const key = await newKey(client.id);
    const rotated = await t.inject({ method: 'POST', url: `/system/api-clients/${client.id}/keys/${key.keyId}/rotate`, payload: { graceSeconds: 0 } });
    expect(rotated.statusCode).toBe(201);
    expectUnauthorized(await get('/system/info', key.token));
    expect((await get('/system/info', rotated.json().replacement.token)).statusCode).toBe(200);
  });

  it('deleting a client removes its keys', async () => {
    const client = await newClient();
    const key = await newKey(client.id);
    expect((await t.inject({ method: 'DELETE', url: `/system/api-clients/${client.id}` })).statusCode).toBe(204);
    expectUnauthorized(await get('/system/info', key.token));
    expect((await t.inject({ method: 'GET', url: `/system/api-clients/${client.id}` })).statusCode).toBe(404);
  });

  it('refuses to revoke, suspend or delete the last usable admin key', async () => {
    const admin = await t.app.apiKeys.service.listClients({ limit: 500 });
    const bootstrap = admin.items.find((c) => c.name === 'bootstrap-admin')!;
    const keyId = t.adminKey.slice(4, 16);
    const revoke = await t.inject({ method: 'POST', url: `/system/api-clients/${bootstrap.id}/keys/${keyId}/revoke`, payload: { reason: 'oops' } });
    expect(revoke.statusCode).toBe(409);
    expect(revoke.json().detail).toContain('no usable admin key');
    expect((await t.inject({ method: 'PATCH', url: `/system/api-clients/${bootstrap.id}`, payload: { status: 'suspended' } })).statusCode).toBe(409);
    expect((await t.inject({ method: 'DELETE', url: `/system/api-clients/${bootstrap.id}` })).statusCode).toBe(409);
    expect((await get('/system/info', t.adminKey)).statusCode).toBe(200);
  });
});

describe('bad input (4xx)', () => {
  it('answers 400 to bad client bodies and queries, naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: 'x', owner: 'o', scopes: ['root'] }, '/scopes/0'],
      [{ name: 'x', owner: 'o', scopes: [] }, '/scopes'],
      [{ name: 'x', owner: 'o', scopes: ['admin', 'admin'] }, '/scopes'],
      [{ name: 'bad name!', owner: 'o', scopes: ['admin'] }, '/name'],
      [{ name: 'x', owner: 'o', scopes: ['admin'], colour: 'red' }, '/colour'],
      [{ name: 'x', owner: 'o', scopes: ['admin'], dailyQuota: 0 }, '/dailyQuota'],
      [{ name: 'x', owner: 'o', scopes: ['admin'], rateLimit: { max: 0, windowSeconds: 1 } }, '/rateLimit'],
      [{ name: 'x', owner: '', scopes: ['admin'] }, '/owner'],
    ];
    for (const [payload, pointer] of cases) {
      const res = await t.inject({ method: 'POST', url: '/system/api-clients', payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(JSON.stringify(res.json().errors), JSON.stringify(payload)).toContain(pointer);
    }
    expect((await t.inject({ method: 'GET', url: '/system/api-clients?status=gone' })).statusCode).toBe(400);
    expect((await t.inject({ method: 'PATCH', url: '/system/api-clients/1', payload: {} })).statusCode).toBe(400);
  });

  it('answers 404 for unknown clients and keys, 400 for a bad key id, 409 for a taken name', async () => {
    expect((await t.inject({ method: 'GET', url: '/system/api-clients/999999' })).statusCode).toBe(404);
    expect((await t.inject({ method: 'PATCH', url: '/system/api-clients/999999', payload: { owner: 'x' } })).statusCode).toBe(404);
    expect((await t.inject({ method: 'DELETE', url: '/system/api-clients/999999' })).statusCode).toBe(404);
    expect((await t.inject({ method: 'POST', url: '/system/api-clients/999999/keys', payload: { name: 'k' } })).statusCode).toBe(404);
    expect((await t.inject({ method: 'GET', url: '/system/api-clients/999999/keys' })).statusCode).toBe(404);
    const client = await newClient();
    expect((await t.inject({ method: 'GET', url: `/system/api-clients/${client.id}/keys/AAAAAAAAAAAA` })).statusCode).toBe(404);
    expect((await t.inject({ method: 'POST', url: `/system/api-clients/${client.id}/keys/AAAAAAAAAAAA/revoke`, payload: { reason: 'x' } })).statusCode).toBe(404);
    expect((await t.inject({ method: 'POST', url: `/system/api-clients/${client.id}/keys/AAAAAAAAAAAA/rotate`, payload: { graceSeconds: 0 } })).statusCode).toBe(404);
    expect((await t.inject({ method: 'GET', url: `/system/api-clients/${client.id}/keys/short` })).statusCode).toBe(400);
    const dup = await t.inject({ method: 'POST', url: '/system/api-clients', payload: { name: client.name, owner: 'o', scopes: ['system:read'] } });
    expect(dup.statusCode).toBe(409);
    expect(dup.headers['content-type']).toContain('application/problem+json');
  });

  it('answers 409 to revoking twice or rotating a revoked key, 422 to an expiry in the past, 400 to a bad grace', async () => {
    const client = await newClient();
    const key = await newKey(client.id);
    const url = `/system/api-clients/${client.id}/keys/${key.keyId}`;
    expect((await t.inject({ method: 'POST', url: `${url}/rotate`, payload: { graceSeconds: -1 } })).statusCode).toBe(400);
    expect((await t.inject({ method: 'POST', url: `${url}/rotate`, payload: { graceSeconds: 999_999_999 } })).statusCode).toBe(400);
    expect((await t.inject({ method: 'POST', url: `${url}/revoke`, payload: {} })).statusCode).toBe(400);
    expect((await t.inject({ method: 'POST', url: `${url}/revoke`, payload: { reason: 'r' } })).statusCode).toBe(200);
    expect((await t.inject({ method: 'POST', url: `${url}/revoke`, payload: { reason: 'r' } })).statusCode).toBe(409);
    expect((await t.inject({ method: 'POST', url: `${url}/rotate`, payload: { graceSeconds: 0 } })).statusCode).toBe(409);
    const past = await t.inject({ method: 'POST', url: `/system/api-clients/${client.id}/keys`, payload: { name: 'k', expiresAt: '2020-01-01T00:00:00Z' } });
    expect(past.statusCode).toBe(422);
    expect((await t.inject({ method: 'POST', url: `/system/api-clients/${client.id}/keys`, payload: { name: 'k', expiresAt: 'tomorrow' } })).statusCode).toBe(400);
  });
});

describe('hot path', () => {
  it('verifies keys and records last use without a database query per request', async () => {
    const client = await newClient();
    const keys = [await newKey(client.id), await newKey(client.id)];
    await t.app.apiKeys.flushLastUsed();
    const before = t.app.database.queryCount;
    for (let i = 0; i < 50; i++) expect((await get('/system/info', keys[i % 2]!.token)).statusCode).toBe(200);
    expect(t.app.database.queryCount).toBe(before);

    await t.app.apiKeys.flushLastUsed();
    expect(t.app.database.queryCount).toBe(before + 1); // one UPDATE for both keys
    const listed = await t.inject({ method: 'GET', url: `/system/api-clients/${client.id}/keys` });
    for (const k of listed.json().items) expect(Date.parse(k.lastUsedAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('compares secrets in constant time: one equal-length comparison for a hit, a miss and a mismatch', () => {
    const good = generateApiKey();
    const rows = {
      clients: [{ id: 1, name: 'c', owner: 'o', description: '', scopes: ['admin'], status: 'active', rateLimitMax: null, rateLimitWindowSeconds: null, dailyQuota: null, createdAt: new Date(), updatedAt: new Date() }],
      keys: [{ keyId: good.keyId, secretHash: hashSecret(good.secret), clientId: 1, scopes: ['admin'], expiresAt: null }],
    };
    const calls: Array<[number, number]> = [];
    const verifier = buildVerifier(rows, {
      compare: (a, b) => {
        calls.push([a.length, b.length]);
        return timingSafeEqual(a, b);
      },
    });
    const wrongSecret = formatApiKey(good.keyId, generateApiKey().secret);
    const wrongChecksum = good.token.slice(0, -1) + (good.token.endsWith('0') ? '1' : '0');
    // First sight: the SHA-256 of the secret against the stored hash (32 bytes).
    expect(verifier.verify(good.token)).toMatchObject({ ok: true });
    // After it: secret and checksum against what was seen (38 bytes), no hashing.
    expect(verifier.verify(good.token)).toMatchObject({ ok: true });
    expect(verifier.verify(wrongSecret)).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifier.verify(wrongChecksum)).toEqual({ ok: false, reason: 'malformed' });
    expect(verifier.verify(generateApiKey().token)).toEqual({ ok: false, reason: 'unknown' });
    expect(calls).toEqual([
      [32, 32],
      [38, 38],
      [38, 38],
      [38, 38],
      [32, 32],
    ]);
  });

  it('forgets what it has seen when the snapshot is rebuilt: a changed hash is checked again', () => {
    const good = generateApiKey();
    const client = { id: 1, name: 'c', owner: 'o', description: '', scopes: ['admin'], status: 'active', rateLimitMax: null, rateLimitWindowSeconds: null, dailyQuota: null, createdAt: new Date(), updatedAt: new Date() };
    const first = buildVerifier({ clients: [client], keys: [{ keyId: good.keyId, secretHash: hashSecret(good.secret), clientId: 1, scopes: ['admin'], expiresAt: null }] });
    expect(first.verify(good.token)).toMatchObject({ ok: true });
    expect(first.verify(good.token)).toMatchObject({ ok: true });
    // Same key id, another secret stored (a rebuild after a change): the old token no longer works.
    const second = buildVerifier({ clients: [client], keys: [{ keyId: good.keyId, secretHash: hashSecret(generateApiKey().secret), clientId: 1, scopes: ['admin'], expiresAt: null }] });
    expect(second.verify(good.token)).toEqual({ ok: false, reason: 'mismatch' });
    // Seen keys still honour expiry and suspension.
    const expired = buildVerifier({ clients: [client], keys: [{ keyId: good.keyId, secretHash: hashSecret(good.secret), clientId: 1, scopes: ['admin'], expiresAt: new Date(Date.now() + 60_000) }] });
    expect(expired.verify(good.token)).toMatchObject({ ok: true });
    expect(expired.verify(good.token, Date.now() + 120_000)).toEqual({ ok: false, reason: 'expired' });
  });
});

describe.skipIf(!serverUrl())('several instances (PostgreSQL)', () => {
  it('refuses a key revoked on one instance on the other within one second', async () => {
    const other = await t.another();
    const client = await newClient();
    const key = await newKey(client.id);
    await vi.waitFor(async () => expect((await get('/system/info', key.token, other)).statusCode).toBe(200), { timeout: 1000, interval: 20 });
    await t.inject({ method: 'POST', url: `/system/api-clients/${client.id}/keys/${key.keyId}/revoke`, payload: { reason: 'leaked' } });
    const revokedAt = Date.now();
    await vi.waitFor(async () => expectUnauthorized(await get('/system/info', key.token, other)), { timeout: 1000, interval: 20 });
    expect(Date.now() - revokedAt).toBeLessThan(1000);
  });

  it('refuses the keys of a client suspended on one instance on the other within one second', async () => {
    const other = await t.another();
    const client = await newClient();
    const key = await newKey(client.id);
    await vi.waitFor(async () => expect((await get('/system/info', key.token, other)).statusCode).toBe(200), { timeout: 1000, interval: 20 });
    await t.inject({ method: 'PATCH', url: `/system/api-clients/${client.id}`, payload: { status: 'suspended' } }, other);
    await vi.waitFor(async () => expectUnauthorized(await get('/system/info', key.token)), { timeout: 1000, interval: 20 });
  });
});

describe('bootstrap', () => {
  it('generates and prints one admin key on the first start of an empty database, and none after', async () => {
    const db = await createTestDatabase();
    const printed: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      printed.push(String(chunk));
      return true;
    });
    let first: FastifyInstance | undefined;
    let second: FastifyInstance | undefined;
    try {
      first = await buildApp({ logger: false, migrate: false, env: testEnv(db), database: db.database });
      const token = printed.join('').match(/vhk_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}/)?.[0];
      expect(token).toBeDefined();
      second = await buildApp({ logger: false, migrate: false, env: testEnv(db), database: await db.connectAgain() });
      expect(printed.join('').match(/vhk_/g)).toHaveLength(1);
      spy.mockRestore();
      const res = await second.inject({ method: 'GET', url: '/system/api-clients', headers: authHeader(token!) });
      expect(res.statusCode).toBe(200);
      expect(res.json().items).toMatchObject([{ name: 'bootstrap-admin', scopes: ['admin'] }]);
    } finally {
      spy.mockRestore();
      await second?.close();
      await first?.close();
      await db.drop();
    }
  });

  it('does not bring back a revoked ADMIN_API_KEY on restart', async () => {
    const extra = await newClient({ scopes: ['admin'] });
    const spare = await newKey(extra.id);
    const bootstrap = (await t.app.apiKeys.service.listClients({ limit: 500 })).items.find((c) => c.name === 'bootstrap-admin')!;
    const keyId = t.adminKey.slice(4, 16);
    const revoke = await t.inject({ method: 'POST', url: `/system/api-clients/${bootstrap.id}/keys/${keyId}/revoke`, payload: { reason: 'rotating the bootstrap key' } });
    expect(revoke.statusCode).toBe(200);
    const restarted = await t.another();
    expectUnauthorized(await get('/system/info', t.adminKey, restarted));
    expect((await get('/system/info', spare.token, restarted)).statusCode).toBe(200);
    // Give the rest of the file its admin key back.
    await t.app.db.update(apiKeys).set({ revokedAt: null, revokedReason: null }).where(eq(apiKeys.keyId, keyId));
    await t.app.apiKeys.verifier.reload();
    await restarted.apiKeys.verifier.reload();
  });
});

describe('route guard at start-up', () => {
  const packWith = (config: Record<string, unknown>) =>
    definePack({
      name: 'careless',
      code: 'ZZ',
      description: 'a route without a scope',
      routes: async (app) => {
        app.get('/system/careless', { config, schema: { tags: ['test'], summary: 'careless', response: { 200: Type.Object({}) } } }, async () => ({}));
      },
    });

  it('refuses to start with a route that declares neither a scope nor public', async () => {
    await expect(t.another(undefined, { extraPacks: [packWith({})] })).rejects.toThrow('GET /system/careless declares neither config.scope nor config.public');
  });

  it('refuses to start with an unknown scope', async () => {
    await expect(t.another(undefined, { extraPacks: [packWith({ scope: 'flags:wirte' })] })).rejects.toThrow("unknown scope 'flags:wirte'");
  });
});
