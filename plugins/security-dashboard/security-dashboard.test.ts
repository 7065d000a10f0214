import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';

const URL = '/system/security/dashboard';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

const from = (remoteAddress: string, opts: InjectOptions) => t.app.inject({ ...opts, remoteAddress } as InjectOptions);
const dashboard = async (window?: string) => {
  const res = await t.inject({ method: 'GET', url: window ? `${URL}?window=${window}` : URL });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
};

describe('security dashboard (TT)', () => {
  it('counts the honeypot hits it was given, per honeypot, per source and per window', async () => {
    const env = (await t.inject({ method: 'POST', url: '/system/security/honeypots', payload: { name: 'd-env', type: 'path', path: '/d/.env', template: 'dotenv' } })).json();
    const wp = (await t.inject({ method: 'POST', url: '/system/security/honeypots', payload: { name: 'd-wp', type: 'path', path: '/d/wp-login.php', template: 'wp-login' } })).json();
    for (let i = 0; i < 3; i++) expect((await from('198.51.100.1', { method: 'GET', url: '/d/.env' })).statusCode).toBe(200);
    await from('198.51.100.2', { method: 'GET', url: '/d/.env' });
    await from('198.51.100.2', { method: 'POST', url: '/d/wp-login.php' });
    // Two hits three days ago, as the telemetry writer would have stored them.
    const old = new Date(Date.now() - 3 * 86_400_000);
    await t.app.honeypots.service.writeHits(
      ['198.51.100.3', '198.51.100.3'].map((sourceIp) => ({ honeypotId: wp.id, occurredAt: old, sourceIp, userAgent: null, method: 'GET', path: '/d/wp-login.php', headers: {}, correlationId: 'seeded' })),
    );
    await t.app.honeypots.settle();

    const day = await dashboard('24h');
    expect(day.window).toBe('24h');
    expect(Date.parse(day.until) - Date.parse(day.since)).toBe(86_400_000);
    expect(day.honeypotHits).toEqual({
      total: 5,
      byHoneypot: [
        { honeypotId: env.id, name: 'd-env', hits: 4 },
        { honeypotId: wp.id, name: 'd-wp', hits: 1 },
      ],
    });
    const top = day.topAddresses.filter((a: { honeypotHits: number }) => a.honeypotHits > 0);
    expect(top).toEqual([
      expect.objectContaining({ address: '198.51.100.1', honeypotHits: 3, total: 3 }),
      expect.objectContaining({ address: '198.51.100.2', honeypotHits: 2, total: 2 }),
    ]);

    const week = await dashboard('7d');
    expect(week.honeypotHits.total).toBe(7);
    expect(week.honeypotHits.byHoneypot).toContainEqual({ honeypotId: wp.id, name: 'd-wp', hits: 3 });
    expect(week.topAddresses).toContainEqual(expect.objectContaining({ address: '198.51.100.3', honeypotHits: 2 }));

    expect((await dashboard('1h')).honeypotHits.total).toBe(5);
    // The default window is a day.
    expect((await dashboard()).window).toBe('24h');

    // A deleted honeypot's hits still count, without a name.
    await t.inject({ method: 'DELETE', url: `/system/security/honeypots/${wp.id}` });
    expect((await dashboard('24h')).honeypotHits.byHoneypot).toContainEqual({ honeypotId: wp.id, name: null, hits: 1 });
  });

  it('counts what an auto-block causes: the rule, its blocked requests, the incident, the offender', async () => {
    const before = await dashboard('1h');
    await t.inject({ method: 'POST', url: '/system/security/honeypots', payload: { name: 'd-block', type: 'path', path: '/d/admin.php', autoBlock: true, blockTtlSeconds: 600 } });
    const ip = '192.0.2.150';
    expect((await from(ip, { method: 'GET', url: '/d/admin.php' })).statusCode).toBe(404);
    await t.app.honeypots.settle();
    for (let i = 0; i < 3; i++) expect((await from(ip, { method: 'GET', url: '/live' })).statusCode).toBe(403);

    const after = await dashboard('1h');
    expect(after.blocked.total - before.blocked.total).toBe(3);
    expect((after.blocked.byRuleType.ip ?? 0) - (before.blocked.byRuleType.ip ?? 0)).toBe(3);
    expect(after.activeRules.byOrigin.honeypot - (before.activeRules.byOrigin.honeypot ?? 0)).toBe(1);
    expect(after.recentIncidents[0]).toMatchObject({ kind: 'honeypot_hit', sourceIp: ip });
    expect(after.topAddresses).toContainEqual(expect.objectContaining({ address: ip, blocked: 3, honeypotHits: 1, total: 4 }));
  });

  it('has the blocklist figures and the pending actions of the workflow pack', async () => {
    const d = await dashboard('1h');
    expect(d).toMatchObject({
      blocked: { total: expect.any(Number), byRuleType: expect.any(Object), byPolicy: expect.any(Array) },
      rateLimited: expect.any(Number),
      authFailures: expect.any(Number),
      activeRules: { total: expect.any(Number) },
      recentIncidents: expect.any(Array),
    });
    expect(d.pendingActions).toEqual({ count: 0, items: [] });

    // A requested action waits for approval: it is pending on the dashboard.
    const action = await t.inject({
      method: 'POST',
      url: '/system/security/actions',
      payload: { type: 'block_ip', params: { address: '198.51.100.0/24', ttlSeconds: 3600 }, reason: 'credential stuffing', severity: 'low' },
    });
    expect(action.statusCode, action.body).toBe(201);
    const pending = (await dashboard('1h')).pendingActions;
    expect(pending.count).toBe(1);
    expect(pending.items).toEqual([expect.objectContaining({ id: action.json().id, type: 'block_ip', severity: 'low', approvals: 0, requiredApprovals: 1 })]);
  });

  it('refuses a window it does not know (400), no key (401) and a key without security:read (403)', async () => {
    const bad = await t.inject({ method: 'GET', url: `${URL}?window=2h` });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/window' }));
    expect((await t.inject({ method: 'GET', url: `${URL}?window=1h&extra=1` })).statusCode).toBe(400);
    expect((await t.app.inject({ method: 'GET', url: URL })).statusCode).toBe(401);
    const other = await t.keyWith(['flags:read']);
    expect((await t.inject({ method: 'GET', url: URL, headers: { authorization: `Bearer ${other.token}` } })).statusCode).toBe(403);
    const reader = await t.keyWith(['security:read']);
    expect((await t.inject({ method: 'GET', url: URL, headers: { authorization: `Bearer ${reader.token}` } })).statusCode).toBe(200);
  });
});

describe("the console's Security view", () => {
  it('calls the dashboard route, which exists, for each window it offers', async () => {
    const js = (await t.app.inject({ method: 'GET', url: '/console/app.js' })).body;
    expect(js).toContain("api('GET', `/system/security/dashboard?window=");
    expect(t.app.routeCatalog).toContainEqual(expect.objectContaining({ method: 'GET', url: URL }));
    const windows = [...js.matchAll(/<option value="(1h|24h|7d)">/g)].map((m) => m[1]);
    expect(windows).toEqual(['1h', '24h', '7d']);
    for (const w of windows) expect((await t.inject({ method: 'GET', url: `${URL}?window=${w}` })).statusCode).toBe(200);
  });
});

describe('without the action workflow pack', () => {
  it('answers with pendingActions null', async () => {
    const bare = await createTestApp({ PACKS_DISABLED: 'security-actions' });
    try {
      const res = await bare.inject({ method: 'GET', url: `${URL}?window=1h` });
      expect(res.statusCode).toBe(200);
      expect(res.json().pendingActions).toBeNull();
    } finally {
      await bare.close();
    }
  });
});
