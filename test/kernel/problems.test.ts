import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePack } from '../../src/pack.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

const boomPack = definePack({
  name: 'boom-test',
  code: 'ZZ',
  description: 'test: a route that fails',
  routes: async (app) => {
    app.get('/boom', { config: { public: true } }, async () => {
      throw new Error('secret-detail: connecting to postgres://app:hunter2@db:5432/app failed');
    });
  },
});

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { extraPacks: [boomPack] });
});
afterAll(async () => t?.close());

describe('problem details (TU)', () => {
  it('answers an unknown route with a 404 problem carrying the correlation id', async () => {
    const res = await t.inject({ method: 'GET', url: '/nope?token=secret', headers: { 'x-request-id': 'abc-123' } });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.headers['x-request-id']).toBe('abc-123');
    expect(res.json()).toMatchObject({ type: '/problems/route-not-found', status: 404, instance: '/nope', correlationId: 'abc-123' });
  });

  it('answers a known path with the wrong method with 405 and Allow', async () => {
    const res = await t.inject({ method: 'DELETE', url: '/system/errors' });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toContain('GET');
    expect(res.json().type).toBe('/problems/method-not-allowed');
  });

  it('rejects unknown query fields with a pointer', async () => {
    const res = await t.inject({ method: 'GET', url: '/system/errors?bogus=1' });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toContainEqual(expect.objectContaining({ in: 'querystring', pointer: '#/bogus' }));
  });

  it('rejects a tampered cursor', async () => {
    const res = await t.inject({ method: 'GET', url: '/system/errors?cursor=abc' });
    expect(res.statusCode).toBe(400);
    expect(res.json().type).toBe('/problems/invalid-cursor');
  });

  it('rejects a cursor that decodes but holds no id (was a 500)', async () => {
    const cursor = Buffer.from(JSON.stringify(['x'])).toString('base64url');
    const res = await t.inject({ method: 'GET', url: `/system/errors?cursor=${cursor}` });
    expect(res.statusCode).toBe(400);
    expect(res.json().type).toBe('/problems/invalid-cursor');
  });

  it('records a 500 in error_events without leaking it to the client', async () => {
    const res = await t.inject({ method: 'GET', url: '/boom', headers: { 'x-request-id': 'boom-1' } });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toMatchObject({ type: '/problems/internal', correlationId: 'boom-1' });
    expect(res.body).not.toMatch(/secret-detail|hunter2|\.ts:\d+/);
    await t.app.batchWriters.flushAll();
    const list = await t.inject({ method: 'GET', url: '/system/errors?correlationId=boom-1' });
    expect(list.statusCode).toBe(200);
    const [event] = list.json().items;
    expect(event).toMatchObject({ kind: 'internal', route: '/boom', statusCode: 500, correlationId: 'boom-1' });
    expect(event.message).toContain('secret-detail');
    // Operators see the message, but not a credential it happened to carry.
    expect(JSON.stringify(event)).not.toContain('hunter2');
    const one = await t.inject({ method: 'GET', url: `/system/errors/${event.id}` });
    expect(one.json().stack).toContain('problems.test.ts');
  });

  it('documents each problem type', async () => {
    const res = await t.inject({ method: 'GET', url: '/problems/route-not-found' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 404, type: '/problems/route-not-found' });
    expect((await t.inject({ method: 'GET', url: '/problems/nonsense' })).statusCode).toBe(404);
  });
});
