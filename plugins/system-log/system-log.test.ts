import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePack } from '../../src/pack.js';
import { encodeCursor } from '../../src/pagination.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { REDACTED } from '../../src/secrets.js';
import { redactSecrets, type SystemLogEntry } from './service.js';

let t: TestApp;
beforeAll(async () => {
  // A pack that writes from a route, as a real pack would.
  const probe = definePack({
    name: 'log-probe',
    code: 'ZZ',
    description: 'test pack',
    dependencies: ['system-log'],
    routes: async (app) => {
      app.post('/test/log-from-request', { config: { public: true } }, async (request, reply) => {
        app.systemLog.write({ level: 'info', source: 'probe', event: 'probe.request', message: 'from a route' }, request);
        return reply.code(204).send();
      });
    },
  });
  t = await createTestApp({}, { extraPacks: [probe] });
  const base = new Date('2030-01-01T00:00:00.000Z').getTime();
  const at = (minutes: number) => new Date(base + minutes * 60_000);
  const entries: SystemLogEntry[] = [
    { level: 'info', source: 'filters', event: 'flag.changed', message: 'one', correlationId: 'corr-a', actor: 'client:1', occurredAt: at(0) },
    { level: 'warn', source: 'filters', event: 'flag.changed', message: 'two', correlationId: 'corr-b', actor: 'client:2', occurredAt: at(10) },
    { level: 'error', source: 'filters', event: 'rule.created', message: 'three', correlationId: 'corr-a', actor: 'client:1', occurredAt: at(20) },
    { level: 'fatal', source: 'filters-other', event: 'rule.deleted', message: 'four', correlationId: 'corr-c', actor: 'client:3', occurredAt: at(30) },
  ];
  for (const e of entries) t.app.systemLog.write(e);
  for (let i = 0; i < 23; i++) t.app.systemLog.write({ level: 'debug', source: 'paging', event: 'page.item', message: `item ${i}` });
  await t.app.batchWriters.flushAll();
});
afterAll(async () => t?.close());

type Item = { id: number; level: string; source: string; event: string; message: string; correlationId: string | null; actor: string | null; occurredAt: string; data: Record<string, unknown> | null };
type PageBody = { items: Item[]; nextCursor: string | null };

async function getLogs(query: string): Promise<PageBody> {
  const res = await t.inject({ method: 'GET', url: `/system/logs?${query}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

async function search(body: Record<string, unknown>): Promise<PageBody> {
  const res = await t.inject({ method: 'POST', url: '/system/logs/query', payload: body });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

const messages = (page: PageBody) => page.items.map((i) => i.message);

describe('system log (TV): writing', () => {
  it('records kernel.started with instance id, version and packs', async () => {
    const page = await getLogs('event=kernel.started');
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({
      level: 'info',
      source: 'kernel',
      data: { instanceId: t.app.lifecycle.instanceId, version: t.app.lifecycle.version, packs: expect.arrayContaining(['system-log']) },
    });
  });

  it('redacts secret-looking keys in data, at any depth, before the row is written', async () => {
    t.app.systemLog.write({
      level: 'info',
      source: 'redaction',
      event: 'secrets.given',
      message: 'careless caller',
      data: {
        user: 'alice',
        password: 'hunter2',
        nested: { apiKey: 'vk_live_abc', Authorization: 'Bearer xyz', list: [{ client_secret: 's3cr3t', keep: 1 }] },
        accessToken: 'tok',
      },
    });
    await t.app.batchWriters.flushAll();
    const [row] = (await getLogs('source=redaction')).items;
    expect(row?.data).toEqual({
      user: 'alice',
      password: REDACTED,
      nested: { apiKey: REDACTED, Authorization: REDACTED, list: [{ client_secret: REDACTED, keep: 1 }] },
      accessToken: REDACTED,
    });
    expect(JSON.stringify(row)).not.toMatch(/hunter2|vk_live_abc|xyz|s3cr3t|"tok"/);
  });

  it('bounds depth and keeps __proto__ a plain key', () => {
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 20; i++) deep = { d: deep };
    expect(JSON.stringify(redactSecrets(deep))).toContain('[truncated]');
    const hostile = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>;
    const out = redactSecrets(hostile) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('takes the correlation id from the request when one is given', async () => {
    const res = await t.inject({ method: 'POST', url: '/test/log-from-request', headers: { 'x-request-id': 'req-from-route-1' } });
    expect(res.statusCode).toBe(204);
    await t.app.batchWriters.flushAll();
    const [row] = (await getLogs('correlationId=req-from-route-1')).items;
    expect(row).toMatchObject({ source: 'probe', event: 'probe.request', actor: null });
  });
});

describe('system log (TV): GET /system/logs filters', () => {
  it('filters by level', async () => {
    expect(messages(await getLogs('source=filters&level=warn'))).toEqual(['two']);
  });
  it('filters by source', async () => {
    expect(messages(await getLogs('source=filters-other'))).toEqual(['four']);
  });
  it('filters by event', async () => {
    expect(messages(await getLogs('event=flag.changed'))).toEqual(['two', 'one']);
  });
  it('filters by correlation id', async () => {
    expect(messages(await getLogs('correlationId=corr-a'))).toEqual(['three', 'one']);
  });
  it('filters by actor', async () => {
    expect(messages(await getLogs('actor=client%3A3'))).toEqual(['four']);
  });
  it('filters by since and until (inclusive)', async () => {
    expect(messages(await getLogs('since=2030-01-01T00:10:00Z&until=2030-01-01T00:20:00Z'))).toEqual(['three', 'two']);
    expect(messages(await getLogs('since=2030-01-01T00:25:00Z'))).toEqual(['four']);
  });
  it('combines filters with AND', async () => {
    expect(messages(await getLogs('correlationId=corr-a&level=error'))).toEqual(['three']);
    expect((await getLogs('correlationId=corr-a&level=fatal')).items).toEqual([]);
  });
  it('returns items newest first with ISO timestamps', async () => {
    const page = await getLogs('source=filters');
    const ids = page.items.map((i) => i.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(page.items[0]?.occurredAt).toBe('2030-01-01T00:20:00.000Z');
  });
});

describe('system log (TV): POST /system/logs/query', () => {
  it('accepts several values per filter', async () => {
    expect(messages(await search({ level: ['warn', 'fatal'] }))).toEqual(['four', 'two']);
    expect(messages(await search({ source: ['filters', 'filters-other'], event: ['rule.created', 'rule.deleted'] }))).toEqual(['four', 'three']);
    expect(messages(await search({ correlationId: ['corr-b', 'corr-c'] }))).toEqual(['four', 'two']);
    expect(messages(await search({ actor: ['client:1', 'client:2'] }))).toEqual(['three', 'two', 'one']);
  });
  // Issue 10, item 1: a JSON body value never changes type; a one-element list is the way.
  it('refuses a bare value where a list is expected, and a number for limit, with 400', async () => {
    expect(messages(await search({ level: ['warn'], source: ['filters'] }))).toEqual(['two']);
    for (const body of [{ level: 'warn' }, { source: 'filters' }, { limit: '10' }]) {
      const res = await t.inject({ method: 'POST', url: '/system/logs/query', payload: body });
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().errors[0]).toMatchObject({ in: 'body', pointer: `#/${Object.keys(body)[0]}` });
    }
  });
  it('applies since and until', async () => {
    expect(messages(await search({ source: ['filters'], since: '2030-01-01T00:05:00Z', until: '2030-01-01T00:15:00Z' }))).toEqual(['two']);
  });
});

describe('system log (TV): pagination', () => {
  it('walks every page with nextCursor, without duplicates or gaps', async () => {
    const seen: Item[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: PageBody = await getLogs(`source=paging&limit=10${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.items);
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(23);
    expect(new Set(seen.map((i) => i.id)).size).toBe(23);
    expect(seen.map((i) => i.message)).toEqual(Array.from({ length: 23 }, (_, i) => `item ${22 - i}`));
  });

  it('paginates the POST search the same way', async () => {
    const first = await search({ source: ['paging'], limit: 20 });
    expect(first.items).toHaveLength(20);
    const second = await search({ source: ['paging'], limit: 20, cursor: first.nextCursor });
    expect(second.items).toHaveLength(3);
    expect(second.nextCursor).toBeNull();
  });
});

describe('system log (TV): bad input', () => {
  const get = (query: string) => t.inject({ method: 'GET', url: `/system/logs?${query}` });
  const post = (payload: unknown) => t.inject({ method: 'POST', url: '/system/logs/query', payload: payload as Record<string, unknown> });

  it('rejects an unknown level', async () => {
    const res = await get('level=loud');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ type: '/problems/validation-failed' });
    expect(res.json().errors).toContainEqual(expect.objectContaining({ in: 'querystring', pointer: '#/level' }));
    expect((await post({ level: ['info', 'loud'] })).statusCode).toBe(400);
  });
  it('rejects an unknown field', async () => {
    const res = await get('bogus=1');
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/bogus', message: "unknown field 'bogus'" }));
    const body = await post({ lvl: ['info'] });
    expect(body.statusCode).toBe(400);
    expect(body.json().errors).toContainEqual(expect.objectContaining({ in: 'body', pointer: '#/lvl' }));
  });
  it('rejects a bad timestamp', async () => {
    expect((await get('since=yesterday')).statusCode).toBe(400);
    expect((await get('until=2030-13-45T00:00:00Z')).statusCode).toBe(400);
    expect((await post({ since: '1700000000' })).statusCode).toBe(400);
  });
  it('rejects limit 0 and 501', async () => {
    for (const limit of ['0', '501', '-1', 'ten']) expect((await get(`limit=${limit}`)).statusCode, limit).toBe(400);
    expect((await post({ limit: 0 })).statusCode).toBe(400);
    expect((await post({ limit: 501 })).statusCode).toBe(400);
  });
  it('rejects several values for one filter on GET', async () => {
    expect((await get('level=info&level=warn')).statusCode).toBe(400);
  });
  it('rejects more than 50 values, an empty list and over-long values', async () => {
    const res = await post({ actor: Array.from({ length: 51 }, (_, i) => `a${i}`) });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/actor' }));
    expect((await post({ source: Array.from({ length: 50 }, (_, i) => `s${i}`) })).statusCode).toBe(200);
    expect((await post({ source: [] })).statusCode).toBe(400);
    expect((await post({ event: ['x'.repeat(129)] })).statusCode).toBe(400);
    expect((await get(`source=${'x'.repeat(65)}`)).statusCode).toBe(400);
  });
  it('rejects wrong value types', async () => {
    expect((await post({ level: [1] })).statusCode).toBe(400);
    expect((await post({ source: { $ne: 'x' } })).statusCode).toBe(400);
    expect((await post([])).statusCode).toBe(400);
  });
  it('rejects invalid JSON', async () => {
    const res = await t.inject({ method: 'POST', url: '/system/logs/query', headers: { 'content-type': 'application/json' }, payload: '{"level": [' });
    expect(res.statusCode).toBe(400);
    expect(res.json().type).toBe('/problems/malformed-request');
  });
  it('rejects a __proto__ key', async () => {
    const res = await t.inject({ method: 'POST', url: '/system/logs/query', headers: { 'content-type': 'application/json' }, payload: '{"__proto__": {"limit": 1}}' });
    expect(res.statusCode).toBe(400);
  });
  it('answers 415 to a body that is not JSON', async () => {
    const res = await t.inject({ method: 'POST', url: '/system/logs/query', headers: { 'content-type': 'text/plain' }, payload: 'level=info' });
    expect(res.statusCode).toBe(415);
    expect(res.json().type).toBe('/problems/unsupported-media-type');
  });
  it('rejects a tampered cursor', async () => {
    for (const cursor of ['abc', encodeCursor(['1; drop table system_logs']), encodeCursor([1.5]), encodeCursor([1, 2]), encodeCursor([-1])]) {
      const res = await get(`cursor=${cursor}`);
      expect(res.statusCode, cursor).toBe(400);
      expect(res.json().type).toBe('/problems/invalid-cursor');
    }
    expect((await post({ cursor: 'abc' })).statusCode).toBe(400);
    expect((await get('cursor=not%20base64!')).statusCode).toBe(400);
  });
});

describe('system log (TV): lifecycle', () => {
  it('writes kernel.stopping on close and flushes it', async () => {
    const other = await t.another();
    const instanceId = other.lifecycle.instanceId;
    await other.close();
    const page = await search({ event: ['kernel.started', 'kernel.stopping'], limit: 500 });
    const mine = page.items.filter((i) => i.data?.instanceId === instanceId).map((i) => i.event);
    expect(mine).toEqual(['kernel.stopping', 'kernel.started']);
  });

  it('is in the OpenAPI document under the logs tag', async () => {
    const doc = (await t.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(doc.paths['/system/logs'].get.tags).toEqual(['logs']);
    expect(doc.paths['/system/logs/query'].post.tags).toEqual(['logs']);
  });
});
