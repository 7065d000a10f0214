import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

describe('problem details (TU)', () => {
  it('answers an unknown route with a 404 problem carrying the correlation id', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/nope?token=secret', headers: { 'x-request-id': 'abc-123' } });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.headers['x-request-id']).toBe('abc-123');
    expect(res.json()).toMatchObject({ type: '/problems/route-not-found', status: 404, instance: '/nope', correlationId: 'abc-123' });
  });

  it('answers a known path with the wrong method with 405 and Allow', async () => {
    const res = await t.app.inject({ method: 'DELETE', url: '/system/errors' });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toContain('GET');
    expect(res.json().type).toBe('/problems/method-not-allowed');
  });

  it('rejects unknown query fields with a pointer', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/system/errors?bogus=1' });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toContainEqual(expect.objectContaining({ in: 'querystring', pointer: '#/bogus' }));
  });

  it('rejects a tampered cursor', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/system/errors?cursor=abc' });
    expect(res.statusCode).toBe(400);
    expect(res.json().type).toBe('/problems/invalid-cursor');
  });

  it('rejects a cursor that decodes but holds no id (was a 500)', async () => {
    const cursor = Buffer.from(JSON.stringify(['x'])).toString('base64url');
    const res = await t.app.inject({ method: 'GET', url: `/system/errors?cursor=${cursor}` });
    expect(res.statusCode).toBe(400);
    expect(res.json().type).toBe('/problems/invalid-cursor');
  });

  it('records a 500 in error_events without leaking it to the client', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/system/errors/1' });
    expect(res.statusCode).toBe(404);
  });

  it('documents each problem type', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/problems/route-not-found' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 404, type: '/problems/route-not-found' });
    expect((await t.app.inject({ method: 'GET', url: '/problems/nonsense' })).statusCode).toBe(404);
  });
});
