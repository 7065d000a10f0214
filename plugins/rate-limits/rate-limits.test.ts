import { and, eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { secondsToUtcMidnight } from './counters.js';
import type { ExceededEvent } from './hooks.js';
import { asCaller, burst, frozenRoutes, packsWithTestCaller } from './test-support.js';

const PATH = '/system/rate-limits';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ TRACE_SAMPLE_RATE: 0 }, { packs: packsWithTestCaller() });
});
afterAll(async () => t?.close());

const create = (body: Record<string, unknown>, app: FastifyInstance = t.app) => t.inject({ method: 'POST', url: PATH, payload: body }, app);
const createOk = async (body: Record<string, unknown>) => {
  const res = await create(body);
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ id: number }>();
};
const remove = (id: number) => t.inject({ method: 'DELETE', url: `${PATH}/${id}` });

const auditRows = (id: number) =>
  t.app.db
    .select()
    .from(adminOperations)
    .where(and(eq(adminOperations.targetType, 'rate-limit'), eq(adminOperations.targetId, String(id))))
    .orderBy(adminOperations.id);

const limitedCount = async (scope: string) => {
  const metric = await t.app.metrics.getSingleMetric('valhalla_rate_limited_total')?.get();
  return metric?.values.find((v) => v.labels.scope === scope)?.value ?? 0;
};

describe('rate-limit rules CRUD', () => {
  it('creates, reads, lists, changes and deletes a rule, audited', async () => {
    const res = await create({ scope: 'ip', match: '2001:DB8:0::1', max: 100, windowSeconds: 60, description: 'noisy host' });
    expect(res.statusCode).toBe(201);
    const rule = res.json();
    expect(rule).toMatchObject({ scope: 'ip', match: '2001:db8::1', route: null, max: 100, windowSeconds: 60, enabled: true, description: 'noisy host' });
    expect(res.headers.location).toBe(`${PATH}/${rule.id}`);
    expect(new Date(rule.createdAt).toISOString()).toBe(rule.createdAt);

    expect((await t.inject({ method: 'GET', url: `${PATH}/${rule.id}` })).json()).toEqual(rule);
    const listed = (await t.inject({ method: 'GET', url: `${PATH}?scope=ip` })).json();
    expect(listed.items.map((r: { id: number }) => r.id)).toContain(rule.id);
    expect((await t.inject({ method: 'GET', url: `${PATH}?scope=global` })).json().items).toEqual([]);

    const patched = await t.inject({ method: 'PATCH', url: `${PATH}/${rule.id}`, payload: { max: 5, enabled: false } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ id: rule.id, max: 5, enabled: false, match: '2001:db8::1' });
    expect((await t.inject({ method: 'GET', url: `${PATH}?enabled=false` })).json().items.map((r: { id: number }) => r.id)).toContain(rule.id);

    // Changing the scope drops what no longer fits; route rules need a pattern.
    const toRoute = await t.inject({ method: 'PATCH', url: `${PATH}/${rule.id}`, payload: { scope: 'route', match: '*' } });
    expect(toRoute.statusCode).toBe(400);
    expect(toRoute.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/route' }));
    const asRoute = await t.inject({ method: 'PATCH', url: `${PATH}/${rule.id}`, payload: { scope: 'route', match: '*', route: 'post /crud-test*' } });
    expect(asRoute.json()).toMatchObject({ scope: 'route', route: 'POST /crud-test*' });
    const back = await t.inject({ method: 'PATCH', url: `${PATH}/${rule.id}`, payload: { scope: 'global' } });
    expect(back.json()).toMatchObject({ scope: 'global', match: '*', route: null });

    expect((await remove(rule.id)).statusCode).toBe(204);
    expect((await t.inject({ method: 'GET', url: `${PATH}/${rule.id}` })).statusCode).toBe(404);

    const rows = await auditRows(rule.id);
    expect(rows.map((r) => r.operation)).toEqual(['rate-limit.create', 'rate-limit.update', 'rate-limit.update', 'rate-limit.update', 'rate-limit.delete']);
    expect(rows[0]).toMatchObject({ before: null, after: rule, correlationId: res.headers['x-request-id'] });
    expect(rows[1]?.before).toMatchObject({ max: 100, enabled: true });
    expect(rows[1]?.after).toMatchObject({ max: 5, enabled: false });
  });

  it('rejects bad input with 400 problems naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ scope: 'planet', max: 1, windowSeconds: 1 }, '#/scope'],
      [{ scope: 'ip', match: '*', max: 0, windowSeconds: 60 }, '#/max'],
      [{ scope: 'ip', match: '*', max: -5, windowSeconds: 60 }, '#/max'],
      [{ scope: 'ip', match: '*', max: 1_000_000_001, windowSeconds: 60 }, '#/max'],
      [{ scope: 'ip', match: '*', max: 1.5, windowSeconds: 60 }, '#/max'],
      [{ scope: 'ip', match: '*', max: 10, windowSeconds: 0 }, '#/windowSeconds'],
      [{ scope: 'ip', match: '*', max: 10, windowSeconds: 86_401 }, '#/windowSeconds'],
      [{ scope: 'ip', match: '*', max: 10 }, '#/windowSeconds'],
      [{ scope: 'ip', match: '*', max: 10, windowSeconds: 60, burst: 3 }, '#/burst'],
      [{ scope: 'ip', match: 'x'.repeat(65), max: 10, windowSeconds: 60 }, '#/match'],
      [{ scope: 'ip', match: '999.1.1.1', max: 10, windowSeconds: 60 }, '#/match'],
      [{ scope: 'api_key', match: 'short', max: 10, windowSeconds: 60 }, '#/match'],
      [{ scope: 'client', match: 'abc', max: 10, windowSeconds: 60 }, '#/match'],
      [{ scope: 'global', match: '10.0.0.1', max: 10, windowSeconds: 60 }, '#/match'],
      [{ scope: 'route', max: 10, windowSeconds: 60 }, '#/route'],
      [{ scope: 'route', route: 'system/flags', max: 10, windowSeconds: 60 }, '#/route'],
      [{ scope: 'route', route: 'FETCH /x', max: 10, windowSeconds: 60 }, '#/route'],
      [{ scope: 'route', route: `/${'r'.repeat(300)}`, max: 10, windowSeconds: 60 }, '#/route'],
      [{ scope: 'ip', route: '/x*', max: 10, windowSeconds: 60 }, '#/route'],
      [{ scope: 'ip', max: 10, windowSeconds: 60, description: 'd'.repeat(1001) }, '#/description'],
    ];
    for (const [body, pointer] of cases) {
      const res = await create(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().type).toBe('/problems/validation-failed');
      expect(res.json().errors, JSON.stringify(body)).toContainEqual(expect.objectContaining({ pointer }));
    }
    expect((await t.inject({ method: 'POST', url: PATH, payload: 'max=1', headers: { 'content-type': 'text/plain' } })).statusCode).toBe(415);

    const id = (await createOk({ scope: 'client', match: '4242', max: 10, windowSeconds: 60 })).id;
    expect((await t.inject({ method: 'PATCH', url: `${PATH}/${id}`, payload: {} })).statusCode).toBe(400);
    expect((await t.inject({ method: 'PATCH', url: `${PATH}/${id}`, payload: { id: 9 } })).statusCode).toBe(400);
    expect((await t.inject({ method: 'PATCH', url: `${PATH}/${id}`, payload: { max: 0 } })).statusCode).toBe(400);
    expect((await t.inject({ method: 'PATCH', url: `${PATH}/${id}`, payload: { match: 'nope' } })).json().errors).toContainEqual(expect.objectContaining({ pointer: '#/match' }));
    await remove(id);

    for (const bad of ['abc', '0', '-1', '99999999999999999999']) {
      expect((await t.inject({ method: 'GET', url: `${PATH}/${bad}` })).statusCode, bad).toBe(400);
    }
    expect((await t.inject({ method: 'GET', url: `${PATH}?scope=planet` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${PATH}?limit=501` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${PATH}?order=id` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${PATH}?cursor=bogus` })).json().type).toBe('/problems/invalid-cursor');
  });

  it('answers 404 for an unknown rule on read, change and delete', async () => {
    for (const [method, payload] of [['GET'], ['PATCH', { max: 3 }], ['DELETE']] as const) {
      const res = await t.inject({ method, url: `${PATH}/999999`, payload });
      expect(res.statusCode, method).toBe(404);
      expect(res.json()).toMatchObject({ type: '/problems/resource-not-found', instance: `${PATH}/999999` });
    }
  });

  it('answers 409 for a second rule with the same scope, match and route, on create and on change', async () => {
    const a = await createOk({ scope: 'ip', match: '2001:db8::77', max: 10, windowSeconds: 60 });
    const again = await create({ scope: 'ip', match: '2001:DB8:0:0::77', max: 99, windowSeconds: 10 });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ type: '/problems/conflict', scope: 'ip', match: '2001:db8::77' });

    const r1 = await createOk({ scope: 'route', route: 'GET /dup*', max: 10, windowSeconds: 60 });
    expect((await create({ scope: 'route', route: 'get /dup*', max: 10, windowSeconds: 60 })).statusCode).toBe(409);
    const r2 = await createOk({ scope: 'route', route: '/dup*', max: 10, windowSeconds: 60 });
    const clash = await t.inject({ method: 'PATCH', url: `${PATH}/${r2.id}`, payload: { route: 'GET /dup*' } });
    expect(clash.statusCode).toBe(409);
    expect((await t.inject({ method: 'GET', url: `${PATH}/${r2.id}` })).json().route).toBe('/dup*');
    for (const r of [a, r1, r2]) await remove(r.id);
  });

  it('pages through rules with an opaque cursor', async () => {
    const ids: number[] = [];
    for (let i = 1; i <= 5; i++) ids.push((await createOk({ scope: 'client', match: String(9000 + i), max: 10, windowSeconds: 60 })).id);
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await t.inject({ method: 'GET', url: `${PATH}?scope=client&limit=2${cursor ? `&cursor=${cursor}` : ''}` });
      const body = res.json<{ items: Array<{ id: number }>; nextCursor: string | null }>();
      seen.push(...body.items.map((r) => r.id));
      cursor = body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(expect.arrayContaining(ids));
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    for (const id of ids) await remove(id);
  });
});

describe('rate limiting requests', () => {
  it('answers 429 problem+json with Retry-After and RateLimit headers, 404s included', async () => {
    const rule = await createOk({ scope: 'route', route: 'GET /limited-404*', max: 3, windowSeconds: 60 });
    const before = await limitedCount('route');
    const ok = await t.app.inject({ method: 'GET', url: '/limited-404/a', remoteAddress: '10.1.0.1' });
    expect(ok.statusCode).toBe(404);
    expect(ok.headers).toMatchObject({ 'x-ratelimit-limit': '3', 'x-ratelimit-remaining': '2', 'ratelimit-policy': `"rule-${rule.id}";q=3;w=60` });
    expect(ok.headers.ratelimit).toMatch(new RegExp(`^"rule-${rule.id}";r=2;t=(60|59)$`));
    expect(await burst(t.app, '/limited-404/b', '10.1.0.1', 2)).toEqual([404, 404]);

    const res = await t.app.inject({ method: 'GET', url: '/limited-404/c?token=secret', remoteAddress: '10.1.0.1' });
    expect(res.statusCode).toBe(429);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const retryAfter = Number(res.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.headers).toMatchObject({ 'x-ratelimit-limit': '3', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(retryAfter) });
    expect(res.json()).toMatchObject({
      type: '/problems/rate-limited',
      status: 429,
      instance: '/limited-404/c',
      correlationId: res.headers['x-request-id'],
      policy: `rule-${rule.id}`,
      limit: 3,
      windowSeconds: 60,
      retryAfter,
    });
    expect(res.body).not.toContain('secret');
    expect(await limitedCount('route')).toBe(before + 1);

    // Another address has its own counter; a percent-encoded path is the same path.
    expect((await t.app.inject({ method: 'GET', url: '/limited-404/a', remoteAddress: '10.1.0.2' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/limited-%34%30%34/x', remoteAddress: '10.1.0.1' })).statusCode).toBe(429);
    await remove(rule.id);
  });

  // Issue 10, item 6: Fastify answers HEAD with the GET handler; HEAD was never limited.
  it('counts HEAD against a GET rule, on one counter with GET', async () => {
    const rule = await createOk({ scope: 'route', route: 'GET /system/health', max: 1, windowSeconds: 60 });
    try {
      const first = await t.inject({ method: 'GET', url: '/system/health' });
      expect(first.statusCode, first.body).toBe(200);
      const head = await t.inject({ method: 'HEAD', url: '/system/health' });
      expect(head.statusCode).toBe(429);
      expect(head.headers['ratelimit-policy']).toBe(`"rule-${rule.id}";q=1;w=60`);
      // HEAD first uses up the same counter for GET (another client: a counter of its own).
      const other = { authorization: `Bearer ${(await t.keyWith(['system:read'])).token}` };
      expect((await t.inject({ method: 'HEAD', url: '/system/health', headers: other })).statusCode).toBe(200);
      expect((await t.inject({ method: 'GET', url: '/system/health', headers: other })).statusCode).toBe(429);
      // Unknown paths too (the 404 handler answers HEAD like GET), and the route index says so.
      const prefix = await createOk({ scope: 'route', route: 'GET /head-404*', max: 1, windowSeconds: 60 });
      expect(await burst(t.app, '/head-404/a', '10.6.0.3', 1)).toEqual([404]);
      expect((await t.app.inject({ method: 'HEAD', url: '/head-404/b', remoteAddress: '10.6.0.3' })).statusCode).toBe(429);
      expect(t.app.rateLimits.describeRoute('HEAD', '/system/health').rule).toBe(`rule-${rule.id} (route GET /system/health: 1 per 60 s per caller)`);
      await remove(prefix.id);
    } finally {
      await remove(rule.id);
    }
  });

  it('applies the most specific rule: an exact ip rule over ip *, a route rule over both', async () => {
    const any = await createOk({ scope: 'ip', match: '*', max: 1000, windowSeconds: 60 });
    const exact = await createOk({ scope: 'ip', match: '10.2.0.1', max: 2, windowSeconds: 60 });
    const route = await createOk({ scope: 'route', route: '/prec-route*', max: 4, windowSeconds: 60 });
    try {
      expect(await burst(t.app, '/prec-other', '10.2.0.1', 3)).toEqual([404, 404, 429]);
      expect(await burst(t.app, '/prec-other', '10.2.0.2', 3)).toEqual([404, 404, 404]);
      expect((await t.app.inject({ method: 'GET', url: '/prec-other', remoteAddress: '10.2.0.2' })).headers['ratelimit-policy']).toBe(`"rule-${any.id}";q=1000;w=60`);
      // The route rule wins over the exact ip rule on its paths, with a counter of its own.
      expect(await burst(t.app, '/prec-route/x', '10.2.0.1', 5)).toEqual([404, 404, 404, 404, 429]);
    } finally {
      for (const r of [any, exact, route]) await remove(r.id);
    }
  });

  it('counts one client behind a trusted proxy once, whatever port or spelling the proxy writes', async () => {
    // Some proxies write `address:port` (a new port per connection) or a zone id into
    // X-Forwarded-For; each spelling must not be a fresh counter.
    const proxied = await t.another({ TRUST_PROXY: '127.0.0.1' });
    // Written through the instance under test: it has reloaded its rules when the write answers.
    const createHere = async (body: Record<string, unknown>) => {
      const res = await create(body, proxied);
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: number }>();
    };
    const exact = await createHere({ scope: 'ip', match: '203.0.113.77', max: 2, windowSeconds: 60 });
    const v6 = await createHere({ scope: 'ip', match: '2001:db8::77', max: 2, windowSeconds: 60 });
    try {
      const via = (xff: string) => proxied.inject({ method: 'GET', url: '/proxied-port', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': xff } });
      const codes = async (xffs: string[]) => {
        const out: number[] = [];
        for (const xff of xffs) out.push((await via(xff)).statusCode);
        return out;
      };
      expect(await codes(['203.0.113.77:40001', '203.0.113.77:40002', '::ffff:203.0.113.77'])).toEqual([404, 404, 429]);
      expect(await codes(['[2001:db8::77]:5000', '2001:DB8:0::77', '2001:db8::77%eth0'])).toEqual([404, 404, 429]);
    } finally {
      for (const r of [exact, v6]) await remove(r.id);
    }
  });

  it("applies the client's own limit unless an api_key rule names the key, and counts per client", async () => {
    const clientRule = await createOk({ scope: 'client', match: '501', max: 100, windowSeconds: 60 });
    const keyRule = await createOk({ scope: 'api_key', match: 'KEYRULE00001', max: 1, windowSeconds: 60 });
    try {
      const own = { clientId: 501, keyId: 'OWNLIMIT0001', rateLimit: { max: 2, windowSeconds: 30 } };
      const codes = await burst(t.app, '/client-own', '10.3.0.1', 3, { headers: asCaller(own) });
      expect(codes).toEqual([404, 404, 429]);
      // Another key of the same client shares the client's counter.
      const sibling = await t.app.inject({ method: 'GET', url: '/client-own', remoteAddress: '10.3.0.9', headers: asCaller({ ...own, keyId: 'OWNLIMIT0002' }) });
      expect(sibling.statusCode).toBe(429);
      expect(sibling.json()).toMatchObject({ policy: 'client-501', limit: 2, windowSeconds: 30 });

      const byKey = asCaller({ ...own, keyId: 'KEYRULE00001' });
      expect(await burst(t.app, '/client-own', '10.3.0.1', 2, { headers: byKey })).toEqual([404, 429]);
      // Without its own limit the client's rule applies.
      const ruled = await t.app.inject({ method: 'GET', url: '/client-own', remoteAddress: '10.3.0.1', headers: asCaller({ clientId: 501, keyId: 'OTHERKEY0001' }) });
      expect(ruled.headers['ratelimit-policy']).toBe(`"rule-${clientRule.id}";q=100;w=60`);
    } finally {
      for (const r of [clientRule, keyRule]) await remove(r.id);
    }
  });

  it('takes a rule change into account at once here and on a second instance within one second', async () => {
    const other = await t.another();
    const rule = await createOk({ scope: 'ip', match: '10.4.0.1', max: 2, windowSeconds: 60 });
    expect(await burst(t.app, '/change', '10.4.0.1', 3)).toEqual([404, 404, 429]);
    await vi.waitFor(() => expect(other.rateLimits.rules.get().ip.get('10.4.0.1')?.max).toBe(2), { timeout: 1000, interval: 10 });
    expect(await burst(other, '/change', '10.4.0.1', 3)).toEqual([404, 404, 429]);

    // A new window starts new counters: the old count does not carry over.
    await t.inject({ method: 'PATCH', url: `${PATH}/${rule.id}`, payload: { windowSeconds: 120, max: 3 } });
    expect(await burst(t.app, '/change', '10.4.0.1', 4)).toEqual([404, 404, 404, 429]);
    await vi.waitFor(() => expect(other.rateLimits.rules.get().ip.get('10.4.0.1')?.max).toBe(3), { timeout: 1000, interval: 10 });

    // Disabled: the rule no longer applies anywhere.
    await t.inject({ method: 'PATCH', url: `${PATH}/${rule.id}`, payload: { enabled: false } });
    expect((await t.app.inject({ method: 'GET', url: '/change', remoteAddress: '10.4.0.1' })).statusCode).toBe(404);
    await vi.waitFor(() => expect(other.rateLimits.rules.get().ip.has('10.4.0.1')).toBe(false), { timeout: 1000, interval: 10 });
    expect((await other.inject({ method: 'GET', url: '/change', remoteAddress: '10.4.0.1' })).statusCode).toBe(404);
    await remove(rule.id);
  });

  it('enforces the daily quota with 429 quota-exceeded until midnight UTC', async () => {
    const events: ExceededEvent[] = [];
    const unsubscribe = t.app.rateLimits.onExceeded((e) => events.push(e));
    const caller = asCaller({ clientId: 601, keyId: 'QUOTAKEY0001', dailyQuota: 3 });
    expect(await burst(t.app, '/quota', '10.5.0.1', 3, { headers: caller })).toEqual([404, 404, 404]);
    const before = await limitedCount('quota');
    const res = await t.app.inject({ method: 'GET', url: '/quota', remoteAddress: '10.5.0.1', headers: caller });
    expect(res.statusCode).toBe(429);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const retryAfter = Number(res.headers['retry-after']);
    expect(Math.abs(retryAfter - secondsToUtcMidnight(new Date()))).toBeLessThanOrEqual(2);
    expect(res.headers).toMatchObject({ 'x-quota-limit': '3', 'x-quota-remaining': '0' });
    expect(res.json()).toMatchObject({ type: '/problems/quota-exceeded', quota: 3, day: new Date().toISOString().slice(0, 10) });
    expect(await limitedCount('quota')).toBe(before + 1);
    expect(events).toContainEqual(expect.objectContaining({ kind: 'quota-exceeded', subject: 'client:601', ip: '10.5.0.1' }));

    const status = await t.inject({ method: 'GET', url: `${PATH}/status?key=client:601` });
    expect(status.json().quota).toMatchObject({ limit: null, used: 4 });
    unsubscribe();
  });

  it('tells onExceeded listeners about each 429 (the escalation extension point)', async () => {
    const rule = await createOk({ scope: 'ip', match: '10.6.0.1', max: 1, windowSeconds: 60 });
    const events: ExceededEvent[] = [];
    const unsubscribe = t.app.rateLimits.onExceeded((e) => events.push(e));
    await burst(t.app, '/escalate', '10.6.0.1', 3);
    unsubscribe();
    await burst(t.app, '/escalate', '10.6.0.1', 1);
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ kind: 'rate-limited', scope: 'ip', ruleId: rule.id, subject: 'ip:10.6.0.1', ip: '10.6.0.1', method: 'GET', path: '/escalate' });
    await remove(rule.id);
  });

  it('reads rules from memory: no database query per request', async () => {
    const rule = await createOk({ scope: 'ip', match: '10.7.0.1', max: 1000, windowSeconds: 60 });
    const caller = asCaller({ clientId: 701, keyId: 'NOQUERYKEY01', dailyQuota: 1000, rateLimit: { max: 1000, windowSeconds: 60 } });
    const before = t.app.database.queryCount;
    await burst(t.app, '/no-query', '10.7.0.1', 50);
    await burst(t.app, '/no-query', '10.7.0.2', 50, { headers: caller });
    expect(t.app.database.queryCount - before).toBe(0);
    await remove(rule.id);
  });

  it('shows current usage for a subject and for the caller', async () => {
    const ipRule = await createOk({ scope: 'ip', match: '10.8.0.1', max: 10, windowSeconds: 60 });
    const route = await createOk({ scope: 'route', route: '/usage-route*', max: 5, windowSeconds: 30 });
    try {
      await burst(t.app, '/usage', '10.8.0.1', 3);
      await burst(t.app, '/usage-route/x', '10.8.0.1', 2);
      const res = await t.inject({ method: 'GET', url: `${PATH}/status?key=ip:10.8.0.1` });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body).toMatchObject({ subject: 'ip:10.8.0.1', store: 'memory', quota: null });
      expect(body.limits[0]).toMatchObject({ policy: `rule-${ipRule.id}`, scope: 'ip', subject: 'ip:10.8.0.1', max: 10, used: 3, remaining: 7 });
      expect(body.limits[0].resetSeconds).toBeGreaterThan(0);
      expect(body.limits).toContainEqual(expect.objectContaining({ policy: `rule-${route.id}`, route: '/usage-route*', used: 2, remaining: 3 }));
      // Reading the status counts nothing.
      const again = (await t.inject({ method: 'GET', url: `${PATH}/status?key=ip:10.8.0.1` })).json();
      expect(again.limits[0].used).toBe(3);

      const unused = (await t.inject({ method: 'GET', url: `${PATH}/status?key=ip:10.8.0.99` })).json();
      expect(unused.limits[0]).toMatchObject({ policy: 'default', used: 0, remaining: 1000, resetSeconds: 0 });

      const mine = await t.inject({ method: 'GET', url: `${PATH}/status`, headers: asCaller({ clientId: 801, keyId: 'STATUSKEY001', dailyQuota: 50 }) });
      expect(mine.json()).toMatchObject({ subject: 'client:801', quota: { limit: 50, used: 1, remaining: 49 } });
      expect(mine.json().limits[0]).toMatchObject({ policy: 'default', subject: 'client:801', used: 1 });

      for (const bad of ['ip', 'ip:nope', 'ip:999.1.1.1', 'client:0', 'client:abc', 'api_key:short', 'user:1', `ip:${'1'.repeat(80)}`]) {
        const r = await t.inject({ method: 'GET', url: `${PATH}/status?key=${encodeURIComponent(bad)}` });
        expect(r.statusCode, bad).toBe(400);
      }
      expect((await t.inject({ method: 'GET', url: `${PATH}/status?key=ip:1.1.1.1&x=1` })).statusCode).toBe(400);
    } finally {
      for (const r of [ipRule, route]) await remove(r.id);
    }
  });

  it('describes each route for the route index', async () => {
    expect(t.app.rateLimits.describeRoute('GET', '/live')).toEqual({ limited: false, rule: null });
    expect(t.app.rateLimits.describeRoute('GET', PATH)).toEqual({ limited: true, rule: 'default (1000 per 60 s per caller)' });
    const rule = await createOk({ scope: 'route', route: 'GET /system/rate-limits*', max: 50, windowSeconds: 60 });
    expect(t.app.rateLimits.describeRoute('get', `${PATH}/:id`)).toEqual({ limited: true, rule: `rule-${rule.id} (route GET /system/rate-limits*: 50 per 60 s per caller)` });
    expect(t.app.rateLimits.describeRoute('POST', PATH).rule).toBe('default (1000 per 60 s per caller)');
    expect((await t.app.overview.read()).rateLimits).toEqual({ enabledRules: 1, store: 'memory', defaultLimit: '1000 per 60 s' });
    await remove(rule.id);
  });

  it('documents its routes with scopes, and freezes its writes', async () => {
    const routes = t.app.routeCatalog.filter((r) => r.pack === 'rate-limits');
    expect(routes.map((r) => `${r.method} ${r.url}`).sort()).toEqual(
      ['DELETE /system/rate-limits/:id', 'GET /system/rate-limits', 'GET /system/rate-limits/:id', 'GET /system/rate-limits/status', 'PATCH /system/rate-limits/:id', 'POST /system/rate-limits', 'HEAD /system/rate-limits', 'HEAD /system/rate-limits/:id', 'HEAD /system/rate-limits/status'].sort(),
    );
    for (const r of routes) expect(r.scope, `${r.method} ${r.url}`).toBe(r.method === 'GET' || r.method === 'HEAD' ? 'rate-limits:read' : 'rate-limits:write');
    expect([...frozenRoutes].filter((r) => r.includes(PATH)).sort()).toEqual([`DELETE ${PATH}/:id`, `PATCH ${PATH}/:id`, `POST ${PATH}`]);
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(doc.paths[PATH].post.summary).toBeTruthy();
    expect(Object.keys(doc.paths[`${PATH}/{id}`])).toEqual(expect.arrayContaining(['get', 'patch', 'delete']));
  });
});

describe('the default limit and exemptions', () => {
  let small: FastifyInstance;
  beforeAll(async () => {
    small = await t.another({ TRACE_SAMPLE_RATE: 0, RATE_LIMIT_DEFAULT_MAX: 3, RATE_LIMIT_DEFAULT_WINDOW_SECONDS: 30 });
  });

  it('limits callers no rule covers with RATE_LIMIT_DEFAULT_MAX, unknown URLs included', async () => {
    const codes = await burst(small, '/enumerate/a', '10.9.0.1', 4);
    expect(codes).toEqual([404, 404, 404, 429]);
    const res = await small.inject({ method: 'GET', url: '/enumerate/b', remoteAddress: '10.9.0.1' });
    expect(res.json()).toMatchObject({ type: '/problems/rate-limited', policy: 'default', limit: 3, windowSeconds: 30 });
    expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(30);
  });

  it('never limits the probes', async () => {
    for (const url of ['/live', '/ready', '/metrics']) {
      const codes = await burst(small, url, '10.9.0.2', 5);
      expect(codes.every((c) => c === 200), url).toBe(true);
    }
  });

  it('limits nothing without a rule when the default is 0', async () => {
    const off = await t.another({ TRACE_SAMPLE_RATE: 0, RATE_LIMIT_DEFAULT_MAX: 0 });
    const res = await off.inject({ method: 'GET', url: '/unlimited', remoteAddress: '10.9.0.3' });
    expect(res.headers['x-ratelimit-limit']).toBeUndefined();
    expect(off.rateLimits.describeRoute('GET', '/system/rate-limits')).toEqual({ limited: false, rule: null });
  });
});

describe('with real API keys (api-keys pack)', () => {
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('answers 401 without a key and 403 without the scope', async () => {
    for (const [method, url] of [['GET', PATH], ['GET', `${PATH}/status`], ['GET', `${PATH}/1`], ['POST', PATH], ['PATCH', `${PATH}/1`], ['DELETE', `${PATH}/1`]] as const) {
      const res = await t.app.inject({ method, url, payload: method === 'POST' || method === 'PATCH' ? { max: 1 } : undefined });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      expect(res.json().type).toBe('/problems/unauthorized');
    }
    const flags = await t.keyWith(['flags:read']);
    expect((await t.inject({ method: 'GET', url: PATH, headers: bearer(flags.token) })).statusCode).toBe(403);
    expect((await t.inject({ method: 'GET', url: `${PATH}/status`, headers: bearer(flags.token) })).statusCode).toBe(403);

    const reader = await t.keyWith(['rate-limits:read']);
    expect((await t.inject({ method: 'GET', url: PATH, headers: bearer(reader.token) })).statusCode).toBe(200);
    const own = await t.inject({ method: 'GET', url: `${PATH}/status`, headers: bearer(reader.token) });
    expect(own.json()).toMatchObject({ subject: `client:${reader.clientId}` });
    const denied = await t.inject({ method: 'POST', url: PATH, payload: { scope: 'ip', match: '10.10.0.1', max: 5, windowSeconds: 60 }, headers: bearer(reader.token) });
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toMatchObject({ type: '/problems/forbidden', requiredScope: 'rate-limits:write' });

    const writer = await t.keyWith(['rate-limits:write']);
    const created = await t.inject({ method: 'POST', url: PATH, payload: { scope: 'ip', match: '10.10.0.1', max: 5, windowSeconds: 60 }, headers: bearer(writer.token) });
    expect(created.statusCode).toBe(201);
    const [row] = await auditRows(created.json().id);
    expect(row).toMatchObject({ actorType: 'client', actorId: String(writer.clientId) });
    await remove(created.json().id);
  });

  it("limits a real client by its own limit, an api_key rule by its key, and enforces its daily quota", async () => {
    const limitedClient = await t.keyWith(['rate-limits:read'], { rateLimit: { max: 2, windowSeconds: 60 } });
    const call = (token: string) => t.inject({ method: 'GET', url: `${PATH}?limit=1`, headers: bearer(token) });
    expect((await call(limitedClient.token)).statusCode).toBe(200);
    expect((await call(limitedClient.token)).statusCode).toBe(200);
    const third = await call(limitedClient.token);
    expect(third.statusCode).toBe(429);
    expect(third.json()).toMatchObject({ policy: `client-${limitedClient.clientId}`, limit: 2 });

    // An api_key rule naming the key wins over the client's own limit.
    const rule = await createOk({ scope: 'api_key', match: limitedClient.keyId, max: 5, windowSeconds: 60 });
    const byKey = await call(limitedClient.token);
    expect(byKey.statusCode).toBe(200);
    expect(byKey.headers['ratelimit-policy']).toBe(`"rule-${rule.id}";q=5;w=60`);
    await remove(rule.id);

    const quotaClient = await t.keyWith(['rate-limits:read'], { dailyQuota: 2 });
    expect((await call(quotaClient.token)).statusCode).toBe(200);
    expect((await call(quotaClient.token)).statusCode).toBe(200);
    const over = await call(quotaClient.token);
    expect(over.statusCode).toBe(429);
    expect(over.json()).toMatchObject({ type: '/problems/quota-exceeded', quota: 2 });
    const status = (await t.inject({ method: 'GET', url: `${PATH}/status?key=client:${quotaClient.clientId}` })).json();
    expect(status.quota).toMatchObject({ used: 3 });
  });
});
