import { and, eq } from 'drizzle-orm';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { API_KEY_PATTERN } from '../api-keys/key-format.js';
import { notificationOutbox } from '../notifications/table.js';
import { normaliseDecoyPath } from './decoys.js';

const PATH = '/system/security/honeypots';
process.env.NOTIFY_SECRET_HONEYPOT_TEST = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  // A channel subscribed to security events, so a hit's notification becomes an outbox row.
  const ch = await t.inject({
    method: 'POST',
    url: '/system/notify/channels',
    payload: { name: 'security-hook', type: 'webhook', events: ['security.*'], config: { url: 'https://hooks.example.com/security', secretEnvs: ['NOTIFY_SECRET_HONEYPOT_TEST'] } },
  });
  expect(ch.statusCode).toBe(201);
});
afterAll(async () => t?.close());

const create = (body: Record<string, unknown>) => t.inject({ method: 'POST', url: PATH, payload: body });
/** A request from an outside address, without the admin key (what a scanner sends). */
const from = (remoteAddress: string, opts: InjectOptions, app: FastifyInstance = t.app) =>
  app.inject({ ...opts, remoteAddress, headers: { 'user-agent': 'sqlmap/1.7', ...(opts.headers as Record<string, string> | undefined) } } as InjectOptions);
const settle = () => t.app.honeypots.settle();
const telemetry = async (id: number, query = '') => (await t.inject({ method: 'GET', url: `${PATH}/${id}/telemetry${query}` })).json();
const outboxFor = (sourceIp: string) =>
  t.app.db
    .select()
    .from(notificationOutbox)
    .where(and(eq(notificationOutbox.eventType, 'security.honeypot_hit')))
    .then((rows) => rows.filter((r) => (r.payload as { sourceIp?: string }).sourceIp === sourceIp));
const incidentsFor = async (sourceIp: string) => {
  const figures = await t.app.blocklist.dashboardFigures(new Date(Date.now() - 3_600_000), new Date(Date.now() + 1000));
  return figures.recentIncidents.filter((i) => i.sourceIp === sourceIp);
};

describe('honeypots pack (TS): CRUD', () => {
  it('creates, reads, lists, changes and deletes a decoy', async () => {
    const res = await create({ name: 'crud-env', type: 'path', path: '/Crud/.ENV/', template: 'dotenv', description: 'fake env' });
    expect(res.statusCode).toBe(201);
    const h = res.json();
    expect(res.headers.location).toBe(`${PATH}/${h.id}`);
    expect(h).toMatchObject({ name: 'crud-env', type: 'path', path: '/crud/.env', enabled: true, autoBlock: false, blockTtlSeconds: 3600, severity: 'high', keyId: null });
    expect(h.response).toMatchObject({ status: 200, contentType: 'text/plain; charset=utf-8' });
    expect(h.response.body).toContain('DB_PASSWORD=');
    expect(h).not.toHaveProperty('token');

    expect((await t.inject({ method: 'GET', url: `${PATH}/${h.id}` })).json()).toEqual(h);
    const list = (await t.inject({ method: 'GET', url: `${PATH}?type=path&limit=500` })).json();
    expect(list.items.map((i: { id: number }) => i.id)).toContain(h.id);

    const patched = await t.inject({ method: 'PATCH', url: `${PATH}/${h.id}`, payload: { status: 404, autoBlock: true, blockTtlSeconds: 120 } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ autoBlock: true, blockTtlSeconds: 120, response: { status: 404 } });

    expect((await t.inject({ method: 'DELETE', url: `${PATH}/${h.id}` })).statusCode).toBe(204);
    expect((await t.inject({ method: 'GET', url: `${PATH}/${h.id}` })).statusCode).toBe(404);
    const audit = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.targetType, 'honeypot'), eq(adminOperations.targetId, String(h.id))));
    expect(audit.map((a) => a.operation)).toEqual(['honeypot.create', 'honeypot.update', 'honeypot.delete']);
  });

  it('answers 404 for an unknown honeypot on read, change, delete and telemetry', async () => {
    for (const [method, url, payload] of [
      ['GET', `${PATH}/999999`],
      ['PATCH', `${PATH}/999999`, { enabled: false }],
      ['DELETE', `${PATH}/999999`],
      ['GET', `${PATH}/999999/telemetry`],
    ] as const) {
      const res = await t.inject({ method, url, payload });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json()).toMatchObject({ type: '/problems/resource-not-found' });
    }
  });

  it('refuses a duplicate name or path (409) and a decoy over a real route (409)', async () => {
    expect((await create({ name: 'dup', type: 'path', path: '/dup-a' })).statusCode).toBe(201);
    expect((await create({ name: 'dup', type: 'path', path: '/dup-b' })).statusCode).toBe(409);
    expect((await create({ name: 'dup-2', type: 'path', path: '/DUP-A' })).statusCode).toBe(409);
    for (const path of ['/live', '/system/admin', '/system/security/honeypots/12', '/system/*']) {
      const res = await create({ name: `shadow-${path.length}`, type: 'path', path });
      expect(res.statusCode, path).toBe(409);
      expect(res.json().detail).toMatch(/cannot be used/);
    }
  });

  it('rejects bad input with 400 problems naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: 'x1', type: 'path' }, '#/path'],
      [{ name: 'x2', type: 'path', path: '/x2', colour: 'red' }, '#/colour'],
      [{ name: 'x3', type: 'canary_key', body: 'hi' }, '#/body'],
      [{ name: 'x4', type: 'path', path: '/x4', status: 500 }, '#/status'],
      [{ name: 'x5', type: 'path', path: 'no-slash' }, '#/path'],
      [{ name: 'x6', type: 'path', path: '/x6', blockTtlSeconds: 5 }, '#/blockTtlSeconds'],
      [{ name: 'x7', type: 'honeypot' }, '#/type'],
      [{ name: 'has space', type: 'canary_key' }, '#/name'],
    ];
    for (const [body, pointer] of cases) {
      const res = await create(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().errors, JSON.stringify(body)).toContainEqual(expect.objectContaining({ pointer }));
    }
    expect((await t.inject({ method: 'PATCH', url: `${PATH}/1`, payload: {} })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${PATH}?cursor=nope!` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${PATH}/abc` })).statusCode).toBe(400);
  });

  it('needs a key with security scopes', async () => {
    expect((await t.app.inject({ method: 'GET', url: PATH })).statusCode).toBe(401);
    const reader = await t.keyWith(['security:read']);
    expect((await t.inject({ method: 'GET', url: PATH, headers: { authorization: `Bearer ${reader.token}` } })).statusCode).toBe(200);
    const denied = await t.inject({ method: 'POST', url: PATH, headers: { authorization: `Bearer ${reader.token}` }, payload: { name: 'nope', type: 'canary_key' } });
    expect(denied.statusCode).toBe(403);
  });
});

describe('decoy paths', () => {
  it('are added and removed at run time, on every instance, without a restart', async () => {
    const other = await t.another();
    expect((await from('203.0.113.5', { method: 'GET', url: '/runtime/.git/config' })).statusCode).toBe(404);

    const h = (await create({ name: 'runtime-git', type: 'path', path: '/runtime/.git/config', status: 200, body: '[core]\n\trepositoryformatversion = 0\n' })).json();
    const hit = await from('203.0.113.5', { method: 'GET', url: '/runtime/.git/config?x=1' });
    expect(hit.statusCode).toBe(200);
    expect(hit.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(hit.body).toContain('repositoryformatversion');
    // Scanners vary case, encoding and slashes; it is still the decoy.
    expect((await from('203.0.113.5', { method: 'POST', url: '//Runtime/%2Egit/CONFIG/' })).statusCode).toBe(200);

    // The other instance hears of it through the state cache (NOTIFY), within a second or so.
    await expect.poll(async () => (await from('203.0.113.6', { method: 'GET', url: '/runtime/.git/config' }, other)).statusCode, { timeout: 5000 }).toBe(200);

    await t.inject({ method: 'PATCH', url: `${PATH}/${h.id}`, payload: { enabled: false } });
    expect((await from('203.0.113.5', { method: 'GET', url: '/runtime/.git/config' })).statusCode).toBe(404);
    await t.inject({ method: 'PATCH', url: `${PATH}/${h.id}`, payload: { enabled: true } });
    expect((await from('203.0.113.5', { method: 'GET', url: '/runtime/.git/config' })).statusCode).toBe(200);
    await t.inject({ method: 'DELETE', url: `${PATH}/${h.id}` });
    const gone = await from('203.0.113.5', { method: 'GET', url: '/runtime/.git/config' });
    expect(gone.statusCode).toBe(404);
    expect(gone.headers['content-type']).toMatch(/problem\+json/);
    await expect.poll(async () => (await from('203.0.113.6', { method: 'GET', url: '/runtime/.git/config' }, other)).statusCode, { timeout: 5000 }).toBe(404);
  });

  it('a prefix decoy covers everything below it', async () => {
    await create({ name: 'wp-admin', type: 'path', path: '/wp-admin/*', template: 'wp-login' });
    for (const url of ['/wp-admin', '/wp-admin/install.php', '/WP-ADMIN/a/b']) {
      const res = await from('203.0.113.7', { method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.body).toContain('loginform');
    }
    expect((await from('203.0.113.7', { method: 'GET', url: '/wp-admins' })).statusCode).toBe(404);
  });

  it('records telemetry: address, user agent, method, path, sanitised headers, correlation id', async () => {
    const h = (await create({ name: 'telemetry-env', type: 'path', path: '/telemetry/.env', template: 'dotenv' })).json();
    const res = await from('198.51.100.23', {
      method: 'GET',
      url: '/telemetry/.env?token=abc',
      headers: {
        'user-agent': 'Mozilla/5.0 (scanner)',
        authorization: 'Bearer vhk_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBCCCCCC',
        cookie: 'session=secret-cookie',
        'x-api-key': 'abc',
        'x-auth-token': 'hunter2',
        'x-forwarded-host': 'example.com',
        'x-note': 'key ghp_0123456789abcdefghijklmnopqrstuvwxyzAB here',
        // Credentials in headers whose names the kernel's secret list does not know (breaker finding 7).
        'x-auth': 'Basic dXNlcjpodW50ZXIy',
        'x-auth-key': '0123456789abcdef',
        'x-session-id': 's3ss10n-value',
        'x-upstream': 'Digest username="u", response="6629fae49393a05397450978507c4ef1"',
        'x-relay': 'gzip, NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==',
        'x-other': 'aws4-hmac-sha256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request',
        'x-plain': 'Basic plan, no credentials',
      },
    });
    expect(res.statusCode).toBe(200);
    await settle();
    const page = await telemetry(h.id);
    expect(page.items).toHaveLength(1);
    const [row] = page.items;
    expect(row).toMatchObject({ honeypotId: h.id, sourceIp: '198.51.100.23', userAgent: 'Mozilla/5.0 (scanner)', method: 'GET', path: '/telemetry/.env', correlationId: res.headers['x-request-id'] });
    expect(row.headers).toMatchObject({ 'x-forwarded-host': 'example.com', 'user-agent': 'Mozilla/5.0 (scanner)' });
    for (const dropped of ['authorization', 'cookie', 'x-api-key', 'x-auth-token', 'x-auth', 'x-auth-key', 'x-session-id']) expect(row.headers).not.toHaveProperty(dropped);
    expect(row.headers['x-note']).toBe('key [redacted] here');
    for (const redacted of ['x-upstream', 'x-relay', 'x-other', 'x-plain']) expect(row.headers[redacted]).toBe('[redacted]');
    expect(JSON.stringify(row)).not.toMatch(/hunter2|secret-cookie|vhk_|ghp_|dXNlcjpodW50ZXIy|0123456789abcdef|s3ss10n|6629fae|TlRMTVNT|AKIDEXAMPLE/);

    // Keyset pages, newest first.
    await from('198.51.100.24', { method: 'GET', url: '/telemetry/.env' });
    await settle();
    const first = await telemetry(h.id, '?limit=1');
    expect(first.items[0].sourceIp).toBe('198.51.100.24');
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = await telemetry(h.id, `?limit=1&cursor=${first.nextCursor}`);
    expect(second.items[0].sourceIp).toBe('198.51.100.23');
    expect(second.nextCursor).toBeNull();
    expect((await telemetry(h.id, '?sourceIp=198.51.100.24')).items).toHaveLength(1);
  });

  it('records an IPv4-mapped IPv6 source as the IPv4 address (as the blocklist spells it)', async () => {
    const h = (await create({ name: 'mapped', type: 'path', path: '/mapped/.env' })).json();
    await from('::ffff:203.0.113.99', { method: 'GET', url: '/mapped/.env' });
    await settle();
    expect((await telemetry(h.id)).items.map((r: { sourceIp: string }) => r.sourceIp)).toEqual(['203.0.113.99']);
  });

  it('hit → block → the next request from that address is 403, with one incident and one notification', async () => {
    const h = (await create({ name: 'block-wp', type: 'path', path: '/block/wp-login.php', template: 'wp-login', autoBlock: true, blockTtlSeconds: 600, severity: 'critical' })).json();
    const ip = '192.0.2.77';
    const hit = await from(ip, { method: 'POST', url: '/block/wp-login.php' });
    expect(hit.statusCode).toBe(200);
    await settle();

    const next = await from(ip, { method: 'GET', url: '/block/wp-login.php' });
    expect(next.statusCode).toBe(403);
    expect(next.json()).toMatchObject({ type: '/problems/blocked' });
    expect((await from(ip, { method: 'GET', url: '/live' })).statusCode).toBe(403);
    // Someone else is not affected.
    expect((await from('192.0.2.78', { method: 'GET', url: '/live' })).statusCode).toBe(200);

    const incidents = await incidentsFor(ip);
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({ kind: 'honeypot_hit', severity: 'critical' });
    const outbox = await outboxFor(ip);
    expect(outbox).toHaveLength(1);
    expect(outbox[0]!.payload).toMatchObject({ honeypotId: h.id, sourceIp: ip, method: 'POST', path: '/block/wp-login.php', offence: 1 });
    const audit = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'honeypot.auto-block'), eq(adminOperations.targetId, String(h.id))));
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actorType: 'system', actorId: 'honeypots', correlationId: hit.headers['x-request-id'] });
  });

  it('blocks a repeat source again, for twice as long, once its block is gone', async () => {
    const h = (await create({ name: 'repeat', type: 'path', path: '/repeat/.git/HEAD', autoBlock: true, blockTtlSeconds: 600 })).json();
    const ip = '192.0.2.120';
    expect((await from(ip, { method: 'GET', url: '/repeat/.git/HEAD' })).statusCode).toBe(404);
    await settle();
    expect((await from(ip, { method: 'GET', url: '/live' })).statusCode).toBe(403);
    // An operator lifts the block; the source comes back to the decoy a few seconds later.
    await t.app.writeThrough(null, { refresh: [t.app.blocklist.entry] }, async (tx) => ({ result: await t.app.blocklist.unblockAddress(tx, ip), audit: null }));
    await new Promise((r) => setTimeout(r, 2100));
    expect((await from(ip, { method: 'GET', url: '/repeat/.git/HEAD' })).statusCode).toBe(404);
    await settle();
    expect((await from(ip, { method: 'GET', url: '/live' })).statusCode).toBe(403);

    const blocks = await t.app.db
      .select()
      .from(adminOperations)
      .where(and(eq(adminOperations.operation, 'honeypot.auto-block'), eq(adminOperations.targetId, String(h.id))))
      .orderBy(adminOperations.id);
    const after = blocks.map((b) => b.after as { offence: number; expiresAt: string });
    expect(after.map((a) => a.offence)).toEqual([1, 2]);
    const lifetime = (a: { expiresAt: string }, b: { occurredAt: string }) => (Date.parse(a.expiresAt) - Date.parse(b.occurredAt)) / 1000;
    expect(lifetime(after[0]!, blocks[0]!)).toBeCloseTo(600, -1);
    expect(lifetime(after[1]!, blocks[1]!)).toBeCloseTo(1200, -1);
    // The alert stayed throttled: one incident, one notification.
    expect(await incidentsFor(ip)).toHaveLength(1);
    expect(await outboxFor(ip)).toHaveLength(1);
  });

  it('throttles alerts per source: repeated hits make one incident and one notification', async () => {
    await create({ name: 'throttle', type: 'path', path: '/throttle/phpinfo.php', status: 404 });
    const ip = '192.0.2.90';
    for (let i = 0; i < 4; i++) expect((await from(ip, { method: 'GET', url: '/throttle/phpinfo.php' })).statusCode).toBe(404);
    await settle();
    expect(await incidentsFor(ip)).toHaveLength(1);
    expect(await outboxFor(ip)).toHaveLength(1);
    // Every hit is still in the telemetry.
    const h = (await t.inject({ method: 'GET', url: `${PATH}?type=path&limit=500` })).json().items.find((i: { name: string }) => i.name === 'throttle');
    expect((await telemetry(h.id)).items).toHaveLength(4);
  });
});

describe('canary keys', () => {
  it('are generated in the real key format, shown once, and any use is a hit that blocks', async () => {
    const res = await create({ name: 'canary-ci', type: 'canary_key', autoBlock: true, blockTtlSeconds: 300, description: 'planted in the CI config repo' });
    expect(res.statusCode).toBe(201);
    const h = res.json();
    expect(h.token).toMatch(API_KEY_PATTERN);
    expect(h.keyId).toBe(h.token.slice(4, 16));
    expect(h.response).toBeNull();
    expect((await t.inject({ method: 'GET', url: `${PATH}/${h.id}` })).json()).not.toHaveProperty('token');
    const audit = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.targetType, 'honeypot'), eq(adminOperations.targetId, String(h.id))));
    expect(JSON.stringify(audit)).not.toContain(h.token);

    // A thief tries it: refused like any unknown key, and recorded.
    const ip = '203.0.113.200';
    const used = await from(ip, { method: 'GET', url: '/system/flags', headers: { 'x-api-key': h.token } });
    expect(used.statusCode).toBe(401);
    await settle();
    const rows = (await telemetry(h.id)).items;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ sourceIp: ip, method: 'GET', path: '/system/flags', correlationId: used.headers['x-request-id'] });
    expect(JSON.stringify(rows[0])).not.toContain(h.token);
    expect((await incidentsFor(ip))[0]).toMatchObject({ kind: 'canary_key' });
    expect((await from(ip, { method: 'GET', url: '/live' })).statusCode).toBe(403);

    // The same key id with another secret is not the canary (a made-up key is not a hit).
    const forged = `${h.token.slice(0, 17)}${'A'.repeat(32)}${h.token.slice(-6)}`;
    await from('203.0.113.201', { method: 'GET', url: '/system/flags', headers: { authorization: `Bearer ${forged}` } });
    // On a public route too: any use counts.
    await from('203.0.113.202', { method: 'GET', url: '/live', headers: { authorization: `Bearer ${h.token}` } });
    await settle();
    expect((await telemetry(h.id)).items.map((r: { sourceIp: string }) => r.sourceIp)).toEqual(['203.0.113.202', ip]);
  });

  it('a disabled canary key is not a hit', async () => {
    const h = (await create({ name: 'canary-off', type: 'canary_key', enabled: false })).json();
    await from('203.0.113.210', { method: 'GET', url: '/live', headers: { authorization: `Bearer ${h.token}` } });
    await settle();
    expect((await telemetry(h.id)).items).toHaveLength(0);
    expect((await t.inject({ method: 'PATCH', url: `${PATH}/${h.id}`, payload: { path: '/x' } })).statusCode).toBe(400);
  });
});

describe('decoy path normalisation', () => {
  it('folds case, encoding, dot segments and slashes', () => {
    expect(normaliseDecoyPath('//A/./b/../.ENV/?q=1')).toBe('/a/.env');
    expect(normaliseDecoyPath('/%2e%65nv')).toBe('/.env');
    expect(normaliseDecoyPath('/%zz')).toBe('/%zz');
    expect(normaliseDecoyPath('/../../etc/passwd')).toBe('/etc/passwd');
  });
});

describe('honeypot telemetry as data', () => {
  it('is an export dataset and a retention category', async () => {
    const datasets = (await t.inject({ method: 'GET', url: '/system/exports/datasets' })).json();
    expect(JSON.stringify(datasets)).toContain('honeypot_telemetry');
    expect(t.app.retention.get('honeypot_telemetry')).toMatchObject({ defaultRetainDays: 90 });
    const exported = await t.inject({ method: 'POST', url: '/system/exports', payload: { dataset: 'honeypot_telemetry', format: 'ndjson' } });
    expect(exported.statusCode, exported.body).toBe(201);
  });
});
