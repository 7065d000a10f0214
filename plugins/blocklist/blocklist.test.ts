import { Value } from '@sinclair/typebox/value';
import { and, eq, sql } from 'drizzle-orm';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { blocklistRules, securityEventRollups } from './table.js';

const RULES = '/system/security/blocklist';
const POLICIES = '/system/security/policies';
/** Any authenticated GET: the blocklist runs before authentication, so its 403 comes first. */
const PROBE = '/system/security/policies';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

const createRule = async (body: Record<string, unknown>, app: FastifyInstance = t.app) => {
  const res = await t.inject({ method: 'POST', url: RULES, payload: body }, app);
  return res;
};
const rule = async (body: Record<string, unknown>): Promise<{ id: number; value: string; expiresAt: string | null }> => {
  const res = await createRule(body);
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
};
const policy = async (body: Record<string, unknown>): Promise<{ id: number }> => {
  const res = await t.inject({ method: 'POST', url: POLICIES, payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
};
/** A request from `ip` (the socket's address) with the admin key. */
const from = (ip: string, opts: Partial<InjectOptions> = {}, app: FastifyInstance = t.app) =>
  t.inject({ method: 'GET', url: PROBE, remoteAddress: ip, ...opts } as InjectOptions, app);

const expectBlocked = (res: { statusCode: number; json(): unknown; headers: Record<string, unknown> }, ruleId: number) => {
  expect(res.statusCode).toBe(403);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ type: '/problems/blocked', status: 403, ruleId });
};

describe('blocklist rules by address', () => {
  it('blocks an exact IPv4 address with a 403 problem naming the rule, and nothing else', async () => {
    const r = await rule({ type: 'ip', value: '203.0.113.10', reason: 'scanner', severity: 'high' });
    expect(r).toMatchObject({ type: 'ip', value: '203.0.113.10', action: 'block', origin: 'manual', active: true, expiresAt: null });
    expectBlocked(await from('203.0.113.10'), r.id);
    expect((await from('203.0.113.11')).statusCode).toBe(200);
    // Blocked before authentication: no key at all still gets the 403, not a 401.
    expectBlocked(await t.inject({ method: 'GET', url: PROBE, remoteAddress: '203.0.113.10', headers: { authorization: 'Bearer nope' } } as InjectOptions), r.id);
  });

  it('matches IPv4 CIDRs and IPv6 CIDRs, and IPv4-mapped IPv6 addresses as IPv4', async () => {
    const v4 = await rule({ type: 'cidr', value: '198.51.100.0/24' });
    const v6 = await rule({ type: 'cidr', value: '2001:DB8:AA00::/40' });
    expect(v6.value).toBe('2001:db8:aa00::/40');
    expectBlocked(await from('198.51.100.77'), v4.id);
    expectBlocked(await from('::ffff:198.51.100.78'), v4.id);
    expect((await from('198.51.101.1')).statusCode).toBe(200);
    expectBlocked(await from('2001:db8:aa12:1::1'), v6.id);
    expect((await from('2001:db8:ab00::1')).statusCode).toBe(200);

    // A mapped rule is stored as the IPv4 it means, and matches plain IPv4 requests.
    const mapped = await rule({ type: 'ip', value: '::ffff:192.0.2.99' });
    expect(mapped.value).toBe('192.0.2.99');
    expectBlocked(await from('192.0.2.99'), mapped.id);
    const mappedNet = await rule({ type: 'cidr', value: '::ffff:100.64.0.0/106' });
    expect(mappedNet.value).toBe('100.64.0.0/10');
    expectBlocked(await from('100.100.1.1'), mappedNet.id);
    const exact6 = await rule({ type: 'ip', value: '2001:db8:0:0:0:0:0:77' });
    expect(exact6.value).toBe('2001:db8::77');
    expectBlocked(await from('2001:db8::77'), exact6.id);
  });

  it('refuses invalid addresses, networks and values with 400 naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ type: 'ip', value: '300.1.1.1' }, '#/value'],
      [{ type: 'ip', value: '10.0.0.0/8' }, '#/value'],
      [{ type: 'cidr', value: '10.0.0.1/8' }, '#/value'],
      [{ type: 'cidr', value: '10.0.0.0/33' }, '#/value'],
      [{ type: 'cidr', value: '2001:db8::/129' }, '#/value'],
      [{ type: 'cidr', value: 'fe80::1%eth0/64' }, '#/value'],
      [{ type: 'path', value: 'admin' }, '#/value'],
      [{ type: 'api_client', value: 'abc' }, '#/value'],
      [{ type: 'user_agent', value: 'bad\u0001agent' }, '#/value'],
      [{ type: 'regex', value: '.*' }, '#/type'],
      [{ type: 'ip', value: '192.0.2.1', colour: 'red' }, '#/colour'],
      [{ type: 'ip', value: '192.0.2.1', severity: 'extreme' }, '#/severity'],
      [{ type: 'ip', value: '192.0.2.1', policyId: 999999 }, '#/policyId'],
      [{ type: 'ip', value: '192.0.2.1', ttlSeconds: 60, expiresAt: new Date().toISOString() }, '#/ttlSeconds'],
      [{ type: 'ip', value: '192.0.2.1', ttlSeconds: 0 }, '#/ttlSeconds'],
    ];
    for (const [body, pointer] of cases) {
      const res = await createRule(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().errors, JSON.stringify(body)).toContainEqual(expect.objectContaining({ pointer }));
    }
  });
});

describe('blocklist rules by user agent, path and client', () => {
  it('matches user agents case-insensitively, as substrings or globs', async () => {
    const sub = await rule({ type: 'user_agent', value: 'EvilScanner' });
    const glob = await rule({ type: 'user_agent', value: 'python-requests/2.*' });
    expectBlocked(await from('192.0.2.20', { headers: { 'user-agent': 'Mozilla/5.0 (evilscanner 3.1)' } }), sub.id);
    expectBlocked(await from('192.0.2.20', { headers: { 'user-agent': 'PYTHON-REQUESTS/2.31.0' } }), glob.id);
    // The glob is anchored: a prefix before it does not match, and `.` is a literal.
    expect((await from('192.0.2.20', { headers: { 'user-agent': 'x python-requests/2.31' } })).statusCode).toBe(200);
    expect((await from('192.0.2.20', { headers: { 'user-agent': 'python-requests/3.0' } })).statusCode).toBe(200);
    // Regex syntax is literal text: `.*` does not match everything.
    await rule({ type: 'user_agent', value: '(a+)+$' });
    expect((await from('192.0.2.20', { headers: { 'user-agent': 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' } })).statusCode).toBe(200);
  });

  it('matches paths after normalisation, so encoded, dotted and doubled paths cannot slip past', async () => {
    const prefix = await rule({ type: 'path', value: '/hidden/area' });
    const glob = await rule({ type: 'path', value: '/*.php' });
    for (const url of [
      '/hidden/area',
      '/hidden/area/below?limit=5',
      '/hidden/%61rea',
      '/hidden/%2561rea',
      '//hidden//area',
      '/hidden/./area',
      '/public/../hidden/area',
      '/hidden/x/%2E%2E/area',
      '/hidden\\area',
    ]) {
      expectBlocked(await t.inject({ method: 'GET', url, remoteAddress: '192.0.2.21' } as InjectOptions), prefix.id);
    }
    expectBlocked(await t.inject({ method: 'GET', url: '/wp-login.php', remoteAddress: '192.0.2.21' } as InjectOptions), glob.id);
    expectBlocked(await t.inject({ method: 'GET', url: '/a/b/%2e%2e/x.php', remoteAddress: '192.0.2.21' } as InjectOptions), glob.id);
    expect((await t.inject({ method: 'GET', url: '/system/security/policies', remoteAddress: '192.0.2.21' } as InjectOptions)).statusCode).toBe(200);
    // Case as the router sees it (case-sensitive): another path, which the router does not serve either.
    expect((await t.inject({ method: 'GET', url: '/Hidden/Area', remoteAddress: '192.0.2.21' } as InjectOptions)).statusCode).toBe(404);
    // A rule written with dots is stored normalised.
    expect((await rule({ type: 'path', value: '/x/../wp-admin' })).value).toBe('/wp-admin');
  });

  it('blocks an API client after authentication, and leaves its other requests to other clients', async () => {
    const blockedClient = await t.keyWith(['security:read']);
    const otherClient = await t.keyWith(['security:read']);
    const r = await rule({ type: 'api_client', value: String(blockedClient.clientId), reason: 'leaked key' });
    expectBlocked(await from('192.0.2.22', { headers: { authorization: `Bearer ${blockedClient.token}` } }), r.id);
    expect((await from('192.0.2.22', { headers: { authorization: `Bearer ${otherClient.token}` } })).statusCode).toBe(200);
  });
});

describe('allow rules, policies, expiry', () => {
  it('lets an allow rule win over every block, whatever the severity', async () => {
    const net = await rule({ type: 'cidr', value: '10.20.0.0/16', severity: 'critical' });
    const ua = await rule({ type: 'user_agent', value: 'curl/*', severity: 'critical' });
    const allow = await rule({ type: 'ip', value: '10.20.30.40', action: 'allow', severity: 'low', reason: 'office' });
    expect((await from('10.20.30.40', { headers: { 'user-agent': 'curl/8.0' } })).statusCode).toBe(200);
    expectBlocked(await from('10.20.30.41'), net.id);
    expectBlocked(await from('10.99.0.1', { headers: { 'user-agent': 'curl/8.0' } }), ua.id);
    // An allowed API client gets through an address block too.
    const office = await t.keyWith(['security:read']);
    await rule({ type: 'api_client', value: String(office.clientId), action: 'allow' });
    expect((await from('10.20.1.1', { headers: { authorization: `Bearer ${office.token}` } })).statusCode).toBe(200);
    expectBlocked(await from('10.20.1.1'), net.id);
    // A blocked address sending a key that is not an allowed client's is still refused with 403 (never a 401).
    expectBlocked(await from('10.20.1.1', { headers: { authorization: 'Bearer vhk_nonsense' } }), net.id);
    const check = await t.inject({ method: 'GET', url: `${RULES}/check?ip=10.20.30.40&ua=curl/8` });
    expect(check.json()).toMatchObject({ decision: 'allow', ruleId: allow.id });
  });

  it('stops matching an expired rule by itself, without a reload', async () => {
    const r = await rule({ type: 'ip', value: '192.0.2.30', expiresAt: new Date(Date.now() + 1500).toISOString() });
    const hour = await rule({ type: 'ip', value: '192.0.2.31', ttlSeconds: 3600 });
    expect(Date.parse(hour.expiresAt!) - Date.now()).toBeGreaterThan(3_500_000);
    expectBlocked(await from('192.0.2.30'), r.id);
    const loadedAt = t.app.blocklistRules.state.loadedAt;
    await vi.waitFor(async () => expect((await from('192.0.2.30')).statusCode).toBe(200), { timeout: 5000, interval: 100 });
    expect(t.app.blocklistRules.state.loadedAt).toBe(loadedAt);
    const listed = await t.inject({ method: 'GET', url: `${RULES}/${r.id}` });
    expect(listed.json()).toMatchObject({ active: false });
  });

  it('in a monitor policy only counts and logs; a disabled policy matches nothing', async () => {
    const monitor = await policy({ name: 'watch-only', mode: 'monitor' });
    const r = await rule({ type: 'ip', value: '192.0.2.40', policyId: monitor.id });
    for (let i = 0; i < 3; i++) expect((await from('192.0.2.40')).statusCode).toBe(200);
    const check = await t.inject({ method: 'GET', url: `${RULES}/check?ip=192.0.2.40` });
    expect(check.json()).toMatchObject({ decision: 'monitor', ruleId: r.id });

    // Switching the policy to enforce takes effect at once.
    expect((await t.inject({ method: 'PATCH', url: `${POLICIES}/${monitor.id}`, payload: { mode: 'enforce' } })).statusCode).toBe(200);
    expectBlocked(await from('192.0.2.40'), r.id);
    expect((await t.inject({ method: 'PATCH', url: `${POLICIES}/${monitor.id}`, payload: { enabled: false } })).json()).toMatchObject({ enabled: false, activeRules: 1 });
    expect((await from('192.0.2.40')).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: `${RULES}/${r.id}` })).json()).toMatchObject({ active: false });

    await t.app.blocklistRules.flushEvents();
    const rows = await t.app.db.select().from(securityEventRollups).where(and(eq(securityEventRollups.ruleId, r.id), eq(securityEventRollups.kind, 'monitored')));
    expect(rows.reduce((n, row) => n + row.count, 0)).toBe(3);
    expect(rows[0]).toMatchObject({ address: '192.0.2.40', ruleType: 'ip', policyId: monitor.id });
  });

  it('aggregates blocked requests per rule per interval instead of one row per request', async () => {
    const r = await rule({ type: 'ip', value: '192.0.2.41' });
    await t.app.blocklistRules.flushEvents();
    for (let i = 0; i < 25; i++) expectBlocked(await from('192.0.2.41'), r.id);
    await t.app.blocklistRules.flushEvents();
    const rows = await t.app.db.select().from(securityEventRollups).where(eq(securityEventRollups.ruleId, r.id));
    expect(rows.length).toBeLessThanOrEqual(2); // a minute boundary may split it in two
    expect(rows.reduce((n, row) => n + row.count, 0)).toBe(25);
    // One system log line for the rule in the interval, not 25.
    await t.app.batchWriters.flushAll();
    const logs = (await t.inject({ method: 'GET', url: '/system/logs?event=blocklist.blocked&limit=500' })).json().items.filter((l: { data: { ruleId?: number } }) => l.data.ruleId === r.id);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ level: 'warn', source: 'security', data: { count: 25, topAddresses: [{ address: '192.0.2.41', count: 25 }] } });
    const metrics = await t.app.metrics.getSingleMetricAsString('valhalla_blocklist_blocked_total');
    expect(metrics).toMatch(/valhalla_blocklist_blocked_total\{rule_type="ip",mode="enforce"\} \d+/);
    const figures = await t.app.blocklist.dashboardFigures(new Date(Date.now() - 3_600_000), new Date(Date.now() + 60_000));
    expect(figures.blocked.total).toBeGreaterThanOrEqual(25);
    expect(figures.blocked.byRuleType.ip).toBeGreaterThanOrEqual(25);
    expect(figures.topAddresses).toContainEqual(expect.objectContaining({ address: '192.0.2.41', blocked: 25 }));
    expect(figures.activeRules.total).toBeGreaterThan(0);
  });
});

describe('client address and instances', () => {
  it('ignores X-Forwarded-For from an untrusted peer, and honours it from a trusted proxy', async () => {
    const r = await rule({ type: 'ip', value: '203.0.113.50' });
    // TRUST_PROXY is empty: the header is the client's own claim.
    expect((await from('192.0.2.60', { headers: { 'x-forwarded-for': '203.0.113.50' } })).statusCode).toBe(200);
    // A blocked peer cannot hide behind a spoofed header either.
    expectBlocked(await from('203.0.113.50', { headers: { 'x-forwarded-for': '192.0.2.61' } }), r.id);

    const behindProxy = await t.another({ TRUST_PROXY: '127.0.0.1' });
    expectBlocked(await from('127.0.0.1', { headers: { 'x-forwarded-for': '203.0.113.50' } }, behindProxy), r.id);
    // Only the proxy's word counts: a hop the client added before it is not the client address.
    expect((await from('127.0.0.1', { headers: { 'x-forwarded-for': '203.0.113.50, 192.0.2.62' } }, behindProxy)).statusCode).toBe(200);
    // An untrusted peer sending the header to the same instance is still judged by its own address.
    expect((await from('192.0.2.63', { headers: { 'x-forwarded-for': '203.0.113.50' } }, behindProxy)).statusCode).toBe(200);
  });

  it('reaches every instance on change, through the state notification', async () => {
    const other = await t.another();
    const r = (await createRule({ type: 'ip', value: '203.0.113.60' }, t.app)).json();
    expectBlocked(await from('203.0.113.60'), r.id);
    await vi.waitFor(async () => expectBlocked(await from('203.0.113.60', {}, other), r.id), { timeout: 5000, interval: 20 });

    expect((await t.inject({ method: 'DELETE', url: `${RULES}/${r.id}` }, other)).statusCode).toBe(204);
    expect((await from('203.0.113.60', {}, other)).statusCode).toBe(200);
    await vi.waitFor(async () => expect((await from('203.0.113.60')).statusCode).toBe(200), { timeout: 5000, interval: 20 });
  });
});

describe('the periodic reload (the safety net behind NOTIFY)', () => {
  it('sees a change made in SQL without a notification (update, delete) at the next periodic reload', async () => {
    const r = await rule({ type: 'ip', value: '203.0.113.70' });
    expectBlocked(await from('203.0.113.70'), r.id);
    // An operator's SQL edit (the README's way back from a lockout) sends no NOTIFY.
    await t.app.db.execute(sql`update blocklist_rules set action = 'allow', updated_at = updated_at + interval '1 second' where id = ${r.id}`);
    await t.app.stateCache.reloadAll();
    expect((await from('203.0.113.70')).statusCode).toBe(200);

    await t.app.db.execute(sql`update blocklist_rules set action = 'block', updated_at = updated_at + interval '2 seconds' where id = ${r.id}`);
    await t.app.stateCache.reloadAll();
    expectBlocked(await from('203.0.113.70'), r.id);
    await t.app.db.execute(sql`delete from blocklist_rules where id = ${r.id}`);
    await t.app.stateCache.reloadAll();
    expect((await from('203.0.113.70')).statusCode).toBe(200);
  });
});

describe('bulk import', () => {
  it('imports many rules in one request, audited once', async () => {
    const rules = Array.from({ length: 300 }, (_, i) => ({ type: 'ip', value: `10.77.${Math.floor(i / 250)}.${i % 250}`, origin: 'import', reason: 'feed' }));
    const res = await t.inject({ method: 'POST', url: `${RULES}/bulk`, payload: { rules } });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().created).toBe(300);
    expect(res.json().ids).toHaveLength(300);
    expectBlocked(await from('10.77.1.10'), res.json().ids[260]);
    const audit = await t.app.db.select().from(adminOperations).where(eq(adminOperations.operation, 'blocklist-rule.bulk-import'));
    expect(audit).toHaveLength(1);
    expect(audit[0]!.after).toMatchObject({ created: 300, byType: { ip: 300 } });
  });

  it('rejects the whole batch for one bad rule, naming its index', async () => {
    const before = await t.app.db.$count(blocklistRules);
    const rules = [
      { type: 'ip', value: '10.78.0.1' },
      { type: 'cidr', value: '10.78.1.0/24' },
      { type: 'cidr', value: '10.78.2.1/24' },
    ];
    const res = await t.inject({ method: 'POST', url: `${RULES}/bulk`, payload: { rules } });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/rules/2/value' }));
    const schemaError = await t.inject({ method: 'POST', url: `${RULES}/bulk`, payload: { rules: [rules[0], { type: 'ip' }] } });
    expect(schemaError.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/rules/1/value' }));
    // A duplicate of an existing rule fails in the database: the rows before it roll back too.
    const dup = await t.inject({ method: 'POST', url: `${RULES}/bulk`, payload: { rules: [rules[0], { type: 'ip', value: '203.0.113.10' }] } });
    expect(dup.statusCode).toBe(409);
    // It names which rule of the import (breaker finding 8), and the stored one.
    expect(dup.json()).toMatchObject({ index: 1, pointer: '#/rules/1', ruleType: 'ip', value: '203.0.113.10', existingRuleId: expect.any(Number) });
    expect(dup.json().detail).toMatch(/#\/rules\/1 .*already exists as rule \d+/);
    const inBatch = await t.inject({ method: 'POST', url: `${RULES}/bulk`, payload: { rules: [rules[0], rules[0]] } });
    expect(inBatch.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/rules/1/value' }));
    expect(await t.app.db.$count(blocklistRules)).toBe(before);
    expect((await from('10.78.0.1')).statusCode).toBe(200);
    const tooMany = await t.inject({ method: 'POST', url: `${RULES}/bulk`, payload: { rules: Array.from({ length: 10_001 }, (_, i) => ({ type: 'ip', value: `10.79.${i >> 8}.${i & 255}` })) } });
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/rules' }));
  });
});

/** Waits for the background escalation of `ip` (it starts in onResponse, after the reply was delivered). */
async function escalated(ip: string, app: FastifyInstance): Promise<void> {
  await vi.waitFor(async () => expect((await t.inject({ method: 'GET', url: `${RULES}?value=${encodeURIComponent(ip)}&action=block` })).json().items).toHaveLength(1), { timeout: 5000, interval: 20 });
  await app.blocklistRules.escalations();
}

describe('escalation of repeated 401s', () => {
  it('blocks an address after repeated failed authentications, longer for a repeat offender', async () => {
    const guarded = await t.another({ BLOCKLIST_AUTH_FAILURE_THRESHOLD: 3, BLOCKLIST_AUTH_FAILURE_WINDOW_SECONDS: 60, BLOCKLIST_ESCALATION_TTL_SECONDS: 600 });
    const bad = { headers: { authorization: 'Bearer vhk_wrongwrongwr_wrongwrongwrongwrongwrongwrongwrongwrong' } };
    for (let i = 0; i < 3; i++) expect((await from('192.0.2.90', bad, guarded)).statusCode).toBe(401);
    await escalated('192.0.2.90', guarded);
    const blocked = await from('192.0.2.90', bad, guarded);
    expect(blocked.statusCode).toBe(403);
    const ruleId = blocked.json().ruleId as number;
    const first = (await t.inject({ method: 'GET', url: `${RULES}/${ruleId}` })).json();
    expect(first).toMatchObject({ type: 'ip', value: '192.0.2.90', origin: 'auth_failure', offences: 1 });
    const firstTtl = Date.parse(first.expiresAt) - Date.parse(first.lastOffenceAt);
    expect(firstTtl).toBeGreaterThan(590_000);
    expect(firstTtl).toBeLessThan(610_000);
    // Other addresses are untouched; the block is audited as the system, with an incident.
    expect((await from('192.0.2.91', {}, guarded)).statusCode).toBe(200);
    const audit = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'blocklist-rule.escalate'), eq(adminOperations.targetId, String(ruleId))));
    expect(audit[0]).toMatchObject({ actorType: 'system', actorId: 'blocklist' });
    const incidents = await t.inject({ method: 'GET', url: '/system/security/incidents?kind=escalation&sourceIp=192.0.2.90' });
    expect(incidents.json().items[0]).toMatchObject({ kind: 'escalation', sourceIp: '192.0.2.90', ruleId });

    // Unblocked, the address offends again: its second block lasts twice as long.
    await t.app.writeThrough(null, { refresh: [t.app.blocklist.entry] }, async (tx) => ({ result: await t.app.blocklist.unblockAddress(tx, '192.0.2.90'), audit: null }));
    await guarded.blocklistRules.state.reload();
    for (let i = 0; i < 3; i++) expect((await from('192.0.2.90', bad, guarded)).statusCode).toBe(401);
    await vi.waitFor(async () => expect((await t.inject({ method: 'GET', url: `${RULES}/${ruleId}` })).json().offences).toBe(2), { timeout: 5000, interval: 20 });
    await guarded.blocklistRules.escalations();
    expect((await from('192.0.2.90', bad, guarded)).statusCode).toBe(403);
    const second = (await t.inject({ method: 'GET', url: `${RULES}/${ruleId}` })).json();
    expect(second.offences).toBe(2);
    const secondTtl = Date.parse(second.expiresAt) - Date.parse(second.lastOffenceAt);
    expect(secondTtl).toBeGreaterThan(1_190_000);
    expect(secondTtl).toBeLessThan(1_210_000);
  });

  it('counts and blocks IPv6 clients by /64, so rotating addresses within it does not help', async () => {
    const guarded = await t.another({ BLOCKLIST_AUTH_FAILURE_THRESHOLD: 3 });
    const bad = { headers: { authorization: 'Bearer nope' } };
    for (const ip of ['2001:db8:77:1::1', '2001:db8:77:1::2', '2001:db8:77:1:ffff::9']) expect((await from(ip, bad, guarded)).statusCode).toBe(401);
    await escalated('2001:db8:77:1::/64', guarded);
    const blocked = await from('2001:db8:77:1:abcd::1', {}, guarded);
    expect(blocked.statusCode).toBe(403);
    expect((await t.inject({ method: 'GET', url: `${RULES}/${blocked.json().ruleId}` })).json()).toMatchObject({ type: 'cidr', value: '2001:db8:77:1::/64', origin: 'auth_failure' });
    expect((await from('2001:db8:77:2::1', {}, guarded)).statusCode).toBe(200);
  });

  it('never escalates an address an allow rule covers', async () => {
    const guarded = await t.another({ BLOCKLIST_AUTH_FAILURE_THRESHOLD: 2 });
    await rule({ type: 'ip', value: '192.0.2.95', action: 'allow' });
    await vi.waitFor(() => expect(guarded.blocklistRules.state.get().matcher.size).toBe(t.app.blocklistRules.state.get().matcher.size), { timeout: 5000 });
    for (let i = 0; i < 4; i++) expect((await from('192.0.2.95', { headers: { authorization: 'Bearer x' } }, guarded)).statusCode).toBe(401);
    // The same failures from an address without an allow rule do escalate (so this instance does escalate).
    for (let i = 0; i < 2; i++) expect((await from('192.0.2.96', { headers: { authorization: 'Bearer x' } }, guarded)).statusCode).toBe(401);
    await escalated('192.0.2.96', guarded);
    expect((await t.inject({ method: 'GET', url: `${RULES}?value=192.0.2.95&action=block` })).json().items).toEqual([]);
  });
});

describe('escalation of repeated 429s', () => {
  it('blocks an address that keeps hitting its rate limit (origin rate_limit)', async () => {
    const limited = await t.another({ RATE_LIMIT_DEFAULT_MAX: 2, RATE_LIMIT_DEFAULT_WINDOW_SECONDS: 60, BLOCKLIST_RATE_LIMIT_THRESHOLD: 3, BLOCKLIST_RATE_LIMIT_WINDOW_SECONDS: 60 });
    const hit = () => t.inject({ method: 'GET', url: '/no-such-page', remoteAddress: '192.0.2.80', headers: { authorization: '' } } as InjectOptions, limited);
    expect((await hit()).statusCode).toBe(404);
    expect((await hit()).statusCode).toBe(404);
    for (let i = 0; i < 3; i++) expect((await hit()).statusCode).toBe(429);
    await escalated('192.0.2.80', limited);
    const blocked = await hit();
    expect(blocked.statusCode).toBe(403);
    const rule = (await t.inject({ method: 'GET', url: `${RULES}/${blocked.json().ruleId}` })).json();
    expect(rule).toMatchObject({ value: '192.0.2.80', origin: 'rate_limit', offences: 1 });
    // Another address, limited too but below the threshold, is not blocked.
    const other = () => t.inject({ method: 'GET', url: '/no-such-page', remoteAddress: '192.0.2.81', headers: { authorization: '' } } as InjectOptions, limited);
    for (let i = 0; i < 4; i++) await other();
    expect((await other()).statusCode).toBe(429);
    await limited.blocklistRules.flushEvents();
    const figures = await limited.blocklist.dashboardFigures(new Date(Date.now() - 60_000), new Date(Date.now() + 60_000));
    expect(figures.rateLimited).toBeGreaterThanOrEqual(6);
    expect(figures.topAddresses).toContainEqual(expect.objectContaining({ address: '192.0.2.80', rateLimited: 3 }));
  });
});

describe('the contract with the other security packs', () => {
  it('blocks and unblocks an address inside the caller’s transaction', async () => {
    const blocked = await t.app.writeThrough(null, { refresh: [t.app.blocklist.entry] }, async (tx) => ({
      result: await t.app.blocklist.blockAddress(tx, { address: '::ffff:203.0.113.70', reason: 'honeypot', severity: 'high', origin: 'honeypot', ttlSeconds: 60 }),
      audit: null,
    }));
    expect(blocked.offence).toBe(1);
    expect(blocked.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 50_000);
    expectBlocked(await from('203.0.113.70'), blocked.ruleId);
    // Blocking again extends the same rule; a network is a `cidr` rule.
    const again = await t.app.writeThrough(null, { refresh: [t.app.blocklist.entry] }, async (tx) => ({
      result: await t.app.blocklist.blockAddress(tx, { address: '203.0.113.70', reason: 'honeypot', severity: 'high', origin: 'honeypot', ttlSeconds: 60, escalate: true }),
      audit: null,
    }));
    expect(again).toMatchObject({ ruleId: blocked.ruleId, offence: 2 });
    expect(again.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 110_000);
    const removed = await t.app.writeThrough(null, { refresh: [t.app.blocklist.entry] }, async (tx) => ({ result: await t.app.blocklist.unblockAddress(tx, '203.0.113.70'), audit: null }));
    expect(removed.removedRuleIds).toEqual([blocked.ruleId]);
    expect((await from('203.0.113.70')).statusCode).toBe(200);
    const incident = await t.app.writeThrough(null, {}, async (tx) => ({
      result: await t.app.blocklist.recordIncident(tx, { kind: 'honeypot_hit', severity: 'medium', sourceIp: '203.0.113.70', summary: 'GET /.env', details: { path: '/.env' }, ruleId: blocked.ruleId }),
      audit: null,
    }));
    expect((await t.inject({ method: 'GET', url: `/system/security/incidents/${incident.id}` })).json()).toMatchObject({ kind: 'honeypot_hit', ruleId: blocked.ruleId });
    await expect(t.app.writeThrough(null, {}, async (tx) => ({ result: await t.app.blocklist.blockAddress(tx, { address: 'nope', reason: '', severity: 'low', origin: 'action', ttlSeconds: null }), audit: null }))).rejects.toMatchObject({ statusCode: 400 });
  });
});

describe('the check endpoint and the API', () => {
  it('explains which rule would decide and why', async () => {
    const low = await rule({ type: 'cidr', value: '172.16.0.0/12', severity: 'low' });
    const high = await rule({ type: 'path', value: '/internal/', severity: 'high' });
    const res = await t.inject({ method: 'GET', url: `${RULES}/check?ip=::ffff:172.16.5.5&path=/public/%2e%2e/internal/x&ua=Mozilla` });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ decision: 'block', ruleId: high.id, input: { ip: '172.16.5.5', path: '/internal/x' } });
    expect(body.explanation).toContain(`rule ${high.id}`);
    expect(body.matches.map((m: { ruleId: number }) => m.ruleId)).toEqual([high.id, low.id]);
    expect(body.matches[1].why).toContain('inside 172.16.0.0/12');
    expect((await t.inject({ method: 'GET', url: `${RULES}/check?ip=192.0.2.250` })).json()).toMatchObject({ decision: 'none', ruleId: null, matches: [] });
    const bad = await t.inject({ method: 'GET', url: `${RULES}/check?ip=1.2.3` });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors).toContainEqual(expect.objectContaining({ in: 'querystring', pointer: '#/ip' }));
  });

  it('has full CRUD on policies and rules with 404, 409 and audit entries', async () => {
    const p = await policy({ name: 'crud-policy', description: 'x' });
    expect((await t.inject({ method: 'POST', url: POLICIES, payload: { name: 'crud-policy' } })).statusCode).toBe(409);
    const r = await rule({ type: 'ip', value: '192.0.2.200', policyId: p.id });
    expect((await createRule({ type: 'ip', value: '192.0.2.200', policyId: p.id })).statusCode).toBe(409);
    const patched = await t.inject({ method: 'PATCH', url: `${RULES}/${r.id}`, payload: { severity: 'critical', reason: 'changed' } });
    expect(patched.json()).toMatchObject({ severity: 'critical', reason: 'changed' });
    expect((await t.inject({ method: 'PATCH', url: `${RULES}/${r.id}`, payload: {} })).statusCode).toBe(400);
    expect((await t.inject({ method: 'PATCH', url: `${RULES}/${r.id}`, payload: { value: '1.1.1.1' } })).statusCode).toBe(400);
    const listed = await t.inject({ method: 'GET', url: `${RULES}?policyId=${p.id}` });
    expect(listed.json().items.map((i: { id: number }) => i.id)).toEqual([r.id]);
    expect((await t.inject({ method: 'GET', url: `${POLICIES}/${p.id}` })).json()).toMatchObject({ activeRules: 1 });
    expect((await t.inject({ method: 'DELETE', url: `${POLICIES}/${p.id}` })).statusCode).toBe(204);
    expect((await t.inject({ method: 'GET', url: `${RULES}/${r.id}` })).statusCode).toBe(404);
    for (const [method, url] of [['GET', `${RULES}/999999`], ['PATCH', `${RULES}/999999`], ['DELETE', `${RULES}/999999`], ['GET', `${POLICIES}/999999`], ['PATCH', `${POLICIES}/999999`], ['DELETE', `${POLICIES}/999999`], ['GET', '/system/security/incidents/999999']] as const) {
      const res = await t.inject({ method, url, payload: method === 'PATCH' ? (url.includes('policies') ? { description: 'x' } : { reason: 'x' }) : undefined });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
    }
    const ops = await t.app.db.select({ op: adminOperations.operation }).from(adminOperations).where(eq(adminOperations.targetId, String(r.id)));
    expect(ops.map((o) => o.op)).toEqual(expect.arrayContaining(['blocklist-rule.create', 'blocklist-rule.update']));
    expect((await t.inject({ method: 'GET', url: `${RULES}?cursor=bogus` })).json().type).toBe('/problems/invalid-cursor');
  });

  it('carries policies and live rules in snapshots, and restores them', async () => {
    const policies = t.app.snapshots.get('blocklist_policies')!;
    const rules = t.app.snapshots.get('blocklist_rules')!;
    expect((await policies.read()).map((p) => p.name)).toContain('automatic');
    await rule({ type: 'ip', value: '192.0.2.223', severity: 'high' });
    await rule({ type: 'cidr', value: '192.0.2.224/30', expiresAt: new Date(Date.now() + 60_000).toISOString() });
    expect(await rules.read()).toContainEqual(expect.objectContaining({ policy: null, type: 'ip', action: 'block', value: '192.0.2.223', severity: 'high' }));
    // What a snapshot carries passes the import's own check (TypeBox's Value, as POST /system/imports uses).
    for (const section of [policies, rules]) for (const item of await section.read()) expect(Value.Errors(section.itemSchema, item).First(), JSON.stringify(item)).toBeUndefined();
    const item = { policy: 'restored', type: 'ip', action: 'block', value: '192.0.2.222', severity: 'low', reason: 'from a snapshot', origin: 'import', expiresAt: null };
    const ctx = { actor: 'test', correlationId: null };
    await t.app.db.transaction(async (tx) => {
      await rules.apply(tx, { create: [item], update: [], remove: [] }, ctx);
      await policies.apply(tx, { create: [], update: [{ name: 'restored', description: 'restored policy', enabled: true, mode: 'enforce' }], remove: [] }, ctx);
    });
    await rules.afterCommit?.();
    expect((await from('192.0.2.222')).statusCode).toBe(403);
    await t.app.db.transaction((tx) => rules.apply(tx, { create: [], update: [], remove: [rules.keyOf(item)] }, ctx));
    await rules.afterCommit?.();
    expect((await from('192.0.2.222')).statusCode).toBe(200);
  });

  it('needs security:read to read and security:write to change', async () => {
    const reader = await t.keyWith(['security:read']);
    const headers = { authorization: `Bearer ${reader.token}` };
    expect((await t.inject({ method: 'GET', url: RULES, headers })).statusCode).toBe(200);
    const write = await t.inject({ method: 'POST', url: RULES, headers, payload: { type: 'ip', value: '192.0.2.201' } });
    expect(write.statusCode).toBe(403);
    expect(write.json()).toMatchObject({ requiredScope: 'security:write' });
    expect(t.app.scopes.entries.filter((e) => e.pack === 'blocklist').map((e) => e.scope)).toEqual(['security:read', 'security:write']);
  });
});

describe('approved work cannot be undone by one security:write key (breaker finding 5)', () => {
  const writer = () => t.keyWith(['security:read', 'security:write']);
  const as = (token: string, opts: InjectOptions) => t.inject({ ...opts, headers: { authorization: `Bearer ${token}`, ...(opts.headers as Record<string, string> | undefined) } } as InjectOptions);
  const actionBlock = (address: string) =>
    t.app.writeThrough(null, { refresh: [t.app.blocklist.entry] }, async (tx) => ({
      result: await t.app.blocklist.blockAddress(tx, { address, reason: 'approved block', severity: 'critical', origin: 'action', ttlSeconds: null }),
      audit: null,
    }));
  const automaticId = async (): Promise<number> => {
    const { ruleId } = await actionBlock('203.0.113.240');
    return (await t.inject({ method: 'GET', url: `${RULES}/${ruleId}` })).json().policyId;
  };

  it('refuses to delete or rename the automatic policy, for admins too', async () => {
    const id = await automaticId();
    const del = await t.inject({ method: 'DELETE', url: `${POLICIES}/${id}` });
    expect(del.statusCode).toBe(409);
    expect(del.json().detail).toMatch(/automatic.*cannot be deleted/);
    const rename = await t.inject({ method: 'PATCH', url: `${POLICIES}/${id}`, payload: { name: 'gone' } });
    expect(rename.statusCode).toBe(409);
    expect((await t.inject({ method: 'GET', url: `${POLICIES}/${id}` })).json()).toMatchObject({ name: 'automatic', enabled: true, mode: 'enforce' });
    expectBlocked(await from('203.0.113.240'), (await actionBlock('203.0.113.240')).ruleId);
  });

  it('lets only an admin with a reason switch the automatic policy to monitor or off, audited', async () => {
    const id = await automaticId();
    const w = await writer();
    for (const payload of [{ mode: 'monitor', reason: 'noisy' }, { enabled: false, reason: 'noisy' }]) {
      const res = await as(w.token, { method: 'PATCH', url: `${POLICIES}/${id}`, payload });
      expect(res.statusCode, res.body).toBe(403);
      expect(res.json()).toMatchObject({ requiredScope: 'admin' });
    }
    // Harmless changes stay open to security:write.
    expect((await as(w.token, { method: 'PATCH', url: `${POLICIES}/${id}`, payload: { description: 'automatic blocks' } })).statusCode).toBe(200);
    const noReason = await t.inject({ method: 'PATCH', url: `${POLICIES}/${id}`, payload: { mode: 'monitor' } });
    expect(noReason.statusCode).toBe(400);
    expect(noReason.json().errors[0].pointer).toBe('#/reason');
    const ok = await t.inject({ method: 'PATCH', url: `${POLICIES}/${id}`, payload: { mode: 'monitor', reason: 'false positives during the migration' } });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({ mode: 'monitor' });
    const [entry] = await t.app.db
      .select()
      .from(adminOperations)
      .where(and(eq(adminOperations.operation, 'security-policy.update'), eq(adminOperations.targetId, String(id))))
      .orderBy(adminOperations.id)
      .then((rows) => rows.slice(-1));
    expect(entry).toMatchObject({ reason: 'false positives during the migration' });
    expect((await t.inject({ method: 'PATCH', url: `${POLICIES}/${id}`, payload: { mode: 'enforce' } })).statusCode).toBe(200);
  });

  it('refuses DELETE and PATCH of a rule made by an approved action, naming the unblock_ip route; an admin may', async () => {
    const { ruleId } = await actionBlock('203.0.113.241');
    const w = await writer();
    for (const opts of [
      { method: 'DELETE', url: `${RULES}/${ruleId}` },
      { method: 'PATCH', url: `${RULES}/${ruleId}`, payload: { expiresAt: new Date(Date.now() + 1000).toISOString() } },
    ] as InjectOptions[]) {
      const res = await as(w.token, opts);
      expect(res.statusCode, res.body).toBe(409);
      expect(res.json()).toMatchObject({ ruleId, origin: 'action' });
      expect(res.json().detail).toMatch(/unblock_ip.*POST \/system\/security\/actions/);
    }
    expectBlocked(await from('203.0.113.241'), ruleId);
    // Other rules stay editable by security:write.
    const manual = await rule({ type: 'ip', value: '203.0.113.242' });
    expect((await as(w.token, { method: 'DELETE', url: `${RULES}/${manual.id}` })).statusCode).toBe(204);
    // A rule cannot claim to be an action's.
    const forged = await createRule({ type: 'ip', value: '203.0.113.243', origin: 'action' });
    expect(forged.statusCode).toBe(400);
    expect((await t.inject({ method: 'DELETE', url: `${RULES}/${ruleId}` })).statusCode).toBe(204);
    expect((await from('203.0.113.241')).statusCode).toBe(200);
  });
});

describe('rules that could never have been meant (breaker finding 8)', () => {
  it('refuses an expiresAt in the past on create, bulk import and PATCH, naming the field', async () => {
    const past = new Date(Date.now() - 60_000).toISOString();
    const created = await createRule({ type: 'ip', value: '203.0.113.250', expiresAt: past });
    expect(created.statusCode).toBe(400);
    expect(created.json().errors[0].pointer).toBe('#/expiresAt');
    const bulk = await t.inject({ method: 'POST', url: `${RULES}/bulk`, payload: { rules: [{ type: 'ip', value: '203.0.113.251' }, { type: 'ip', value: '203.0.113.252', expiresAt: past }] } });
    expect(bulk.statusCode).toBe(400);
    expect(bulk.json().errors[0].pointer).toBe('#/rules/1/expiresAt');
    const r = await rule({ type: 'ip', value: '203.0.113.253', ttlSeconds: 3600 });
    const patched = await t.inject({ method: 'PATCH', url: `${RULES}/${r.id}`, payload: { expiresAt: past } });
    expect(patched.statusCode).toBe(400);
    expect(patched.json().errors[0].pointer).toBe('#/expiresAt');
    expect((await t.inject({ method: 'PATCH', url: `${RULES}/${r.id}`, payload: { expiresAt: null } })).statusCode).toBe(200);
  });

  it('refuses an api_client rule naming no client, naming the field', async () => {
    const created = await createRule({ type: 'api_client', value: '99999999' });
    expect(created.statusCode).toBe(400);
    expect(created.json().errors[0]).toMatchObject({ pointer: '#/value', message: expect.stringMatching(/no API client 99999999/) });
    const client = await t.keyWith(['security:read']);
    const bulk = await t.inject({ method: 'POST', url: `${RULES}/bulk`, payload: { rules: [{ type: 'api_client', value: String(client.clientId) }, { type: 'api_client', value: '99999998' }] } });
    expect(bulk.statusCode).toBe(400);
    expect(bulk.json().errors[0].pointer).toBe('#/rules/1/value');
    expect((await createRule({ type: 'api_client', value: String(client.clientId), action: 'allow' })).statusCode).toBe(201);
  });
});

describe('outside tester findings (trailing slash, proxy address forms, lockout, break-glass list)', () => {
  it('matches path rules against the routed path: a trailing slash escapes neither globs nor prefixes', async () => {
    const glob = await rule({ type: 'path', value: '/system/security/inciden?s' });
    expectBlocked(await t.inject({ method: 'GET', url: '/system/security/incidents', remoteAddress: '192.88.99.30' } as InjectOptions), glob.id);
    expectBlocked(await t.inject({ method: 'GET', url: '/system/security/incidents/', remoteAddress: '192.88.99.30' } as InjectOptions), glob.id);
    expectBlocked(await t.inject({ method: 'GET', url: '/system/security/incidents/?x=1', remoteAddress: '192.88.99.30' } as InjectOptions), glob.id);
    // A prefix written with the slash covers the route without it, which the router serves alike.
    const prefix = await rule({ type: 'path', value: '/system/overview/' });
    expectBlocked(await t.inject({ method: 'GET', url: '/system/overview', remoteAddress: '192.88.99.30' } as InjectOptions), prefix.id);
    // And a glob written with the slash covers the route without it.
    const slashGlob = await rule({ type: 'path', value: '/system/scop?s/' });
    expectBlocked(await t.inject({ method: 'GET', url: '/system/scopes', remoteAddress: '192.88.99.30' } as InjectOptions), slashGlob.id);
    for (const id of [glob.id, prefix.id, slashGlob.id]) expect((await t.inject({ method: 'DELETE', url: `${RULES}/${id}` })).statusCode).toBe(204);
    const after = await t.inject({ method: 'GET', url: '/system/security/incidents/', remoteAddress: '192.88.99.30' } as InjectOptions);
    expect(after.statusCode, after.body).toBe(200);
  });

  it('normalises a proxy-written client address (port, [v6]:port, zone id) for matching and escalation', async () => {
    const v4 = await rule({ type: 'ip', value: '203.0.113.77' });
    const v6 = await rule({ type: 'cidr', value: '2001:db8:77::/48' });
    const proxy = await t.another({ TRUST_PROXY: '127.0.0.1', BLOCKLIST_AUTH_FAILURE_THRESHOLD: 3, BLOCKLIST_AUTH_FAILURE_WINDOW_SECONDS: 60 });
    const via = (xff: string, opts: Partial<InjectOptions> = {}) => from('127.0.0.1', { ...opts, headers: { 'x-forwarded-for': xff, ...(opts.headers as Record<string, string> | undefined) } }, proxy);
    expectBlocked(await via('203.0.113.77:1234'), v4.id);
    expectBlocked(await via('[::ffff:203.0.113.77]:443'), v4.id);
    expectBlocked(await via('[2001:db8:77::5]:80'), v6.id);
    expectBlocked(await via('[2001:db8:77::5]'), v6.id);
    expectBlocked(await via('2001:db8:77::5%eth0'), v6.id);
    expect((await via('203.0.113.78:1234')).statusCode).toBe(200);

    // 401s from `address:port` escalate the address itself.
    const bad = { headers: { authorization: 'Bearer vhk_wrongwrongwr_wrongwrongwrongwrongwrongwrongwrongwrong' } };
    for (let i = 0; i < 3; i++) expect((await via(`192.88.99.77:${4000 + i}`, bad)).statusCode).toBe(401);
    await escalated('192.88.99.77', proxy);
    expect((await via('192.88.99.77')).statusCode).toBe(403);
    // A hostname is no address: matched by no address rule and never escalated, never a 5xx.
    for (let i = 0; i < 4; i++) expect((await via('evil-host:99', bad)).statusCode).toBe(401);
    await proxy.blocklistRules.escalations();
    expect((await via('evil-host:99')).statusCode).toBe(200);
  });

  it('refuses with 409 a rule that would block the request writing it, unless forced (audited)', async () => {
    // Injected requests come from 127.0.0.1 with the user agent `lightMyRequest`.
    for (const body of [
      { type: 'ip', value: '127.0.0.1' },
      { type: 'cidr', value: '0.0.0.0/0' },
      { type: 'cidr', value: '127.0.0.0/8' },
      { type: 'path', value: '/' },
      { type: 'path', value: '/system/security/' },
      { type: 'path', value: '/system/security/blocklist' },
      { type: 'user_agent', value: '*' },
      { type: 'user_agent', value: 'lightmy' },
    ]) {
      const res = await createRule({ ...body, reason: 'oops' });
      expect(res.statusCode, JSON.stringify(body)).toBe(409);
      expect(res.json()).toMatchObject({ type: '/problems/conflict', wouldBlock: { type: body.type } });
      expect(res.json().detail).toContain('force');
    }
    // Nothing was written.
    expect((await t.inject({ method: 'GET', url: `${RULES}?type=cidr&value=0.0.0.0/0` })).json().items).toHaveLength(0);
    // A rule in a monitor-mode policy blocks nobody: no lockout.
    const monitor = await policy({ name: 'lockout-monitor', mode: 'monitor' });
    const watched = await rule({ type: 'user_agent', value: 'lockout-agent', policyId: monitor.id });
    // Moving it into an enforcing policy would lock the author (sending that agent) out: 409, unchanged.
    const moved = await t.inject({ method: 'PATCH', url: `${RULES}/${watched.id}`, headers: { 'user-agent': 'lockout-agent' }, payload: { policyId: null } });
    expect(moved.statusCode, moved.body).toBe(409);
    expect((await t.inject({ method: 'GET', url: `${RULES}/${watched.id}` })).json().policyId).toBe(monitor.id);
    // Forced: written, and the audit entry says so.
    const forced = await t.inject({ method: 'POST', url: RULES, headers: { 'user-agent': 'forced-agent' }, payload: { type: 'user_agent', value: 'forced-agent', force: true } });
    expect(forced.statusCode, forced.body).toBe(201);
    const [entry] = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'blocklist-rule.create'), eq(adminOperations.targetId, String(forced.json().id))));
    expect(entry?.after).toMatchObject({ forced: true });
    expect((await t.inject({ method: 'GET', url: PROBE, headers: { 'user-agent': 'forced-agent' } })).statusCode).toBe(403);
    expect((await t.inject({ method: 'DELETE', url: `${RULES}/${forced.json().id}` })).statusCode).toBe(204);
    // An unforced rule that does not touch the author is written without an override mark.
    const plain = await rule({ type: 'user_agent', value: 'someone-else-agent' });
    const [plainEntry] = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'blocklist-rule.create'), eq(adminOperations.targetId, String(plain.id))));
    expect(plainEntry?.after).not.toHaveProperty('forced');

    // Bulk: one locking rule refuses the whole import, naming it.
    const bulk = await t.inject({ method: 'POST', url: `${RULES}/bulk`, payload: { rules: [{ type: 'ip', value: '192.0.2.201' }, { type: 'cidr', value: '127.0.0.0/8' }] } });
    expect(bulk.statusCode, bulk.body).toBe(409);
    expect(bulk.json()).toMatchObject({ wouldBlock: { type: 'cidr', value: '127.0.0.0/8' } });
    expect((await t.inject({ method: 'GET', url: `${RULES}?value=192.0.2.201` })).json().items).toHaveLength(0);

    // An allow rule already covering the author means no lockout.
    await rule({ type: 'ip', value: '198.18.0.5', action: 'allow' });
    const covered = await t.inject({ method: 'POST', url: RULES, remoteAddress: '198.18.0.5', payload: { type: 'cidr', value: '198.18.0.0/24' } } as InjectOptions);
    expect(covered.statusCode, covered.body).toBe(201);
    // Without it, from the same network: refused.
    const uncovered = await t.inject({ method: 'POST', url: RULES, remoteAddress: '198.18.1.5', payload: { type: 'cidr', value: '198.18.1.0/24' } } as InjectOptions);
    expect(uncovered.statusCode).toBe(409);
  });

  it('never blocks or escalates BLOCKLIST_ALWAYS_ALLOW addresses, whatever the rules', async () => {
    const r = await rule({ type: 'cidr', value: '198.19.0.0/24' });
    const glass = await t.another({ BLOCKLIST_ALWAYS_ALLOW: ' 198.19.0.9 , 2001:db8:99::/48', BLOCKLIST_AUTH_FAILURE_THRESHOLD: 2, BLOCKLIST_AUTH_FAILURE_WINDOW_SECONDS: 60 });
    expectBlocked(await from('198.19.0.8', {}, glass), r.id);
    expect((await from('198.19.0.9', {}, glass)).statusCode).toBe(200);
    // The same address on an instance without the list is blocked: the list is per instance, from its environment.
    expectBlocked(await from('198.19.0.9'), r.id);
    const check = await t.inject({ method: 'GET', url: `${RULES}/check?ip=198.19.0.9` }, glass);
    expect(check.json()).toMatchObject({ decision: 'allow', ruleId: null, explanation: expect.stringContaining('BLOCKLIST_ALWAYS_ALLOW') });
    expect((await t.inject({ method: 'GET', url: `${RULES}/check?ip=198.19.0.9` })).json()).toMatchObject({ decision: 'block', ruleId: r.id });
    // The guard does not count a break-glass caller as locked out.
    const own = await t.inject({ method: 'POST', url: RULES, remoteAddress: '2001:db8:99::1', payload: { type: 'ip', value: '2001:db8:99::1' } } as InjectOptions, glass);
    expect(own.statusCode, own.body).toBe(201);
    expect((await from('2001:db8:99::1', {}, glass)).statusCode).toBe(200);
    // Escalation never blocks it.
    const bad = { headers: { authorization: 'Bearer vhk_wrongwrongwr_wrongwrongwrongwrongwrongwrongwrongwrong' } };
    for (let i = 0; i < 4; i++) expect((await from('198.19.0.9', bad, glass)).statusCode).toBe(401);
    await glass.blocklistRules.escalations();
    expect((await t.inject({ method: 'GET', url: `${RULES}?value=198.19.0.9` })).json().items).toHaveLength(0);
  });
});
