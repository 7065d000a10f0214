import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePack } from '../../src/pack.js';
import { StrictObject } from '../../src/schemas.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

/**
 * A JSON body value never changes type on the way in (issue 10, item 1): coercion is only for
 * the parts that are text on the wire (querystring, params, headers).
 */
const echoPack = definePack({
  name: 'body-types-fixture',
  code: 'ZZ',
  description: 'Test-only route echoing what validation let through',
  routes: async (app) => {
    app.post(
      '/system/fixture/echo/:n',
      {
        config: { scope: 'system:write' },
        schema: {
          tags: ['fixture'],
          summary: 'echo',
          params: StrictObject({ n: Type.Integer() }),
          querystring: StrictObject({ limit: Type.Optional(Type.Integer()), tags: Type.Optional(Type.Array(Type.String())) }),
          // Declared in mixed case, as Fastify allows: names are matched case-insensitively.
          headers: Type.Object({ 'X-Count': Type.Optional(Type.Integer()) }),
          body: StrictObject({
            name: Type.Optional(Type.String()),
            count: Type.Optional(Type.Integer()),
            on: Type.Optional(Type.Boolean()),
            tags: Type.Optional(Type.Array(Type.String())),
            either: Type.Optional(Type.Unsafe<string | number>({ type: ['string', 'number'] })),
          }),
          response: { 200: Type.Object({ params: Type.Unknown(), query: Type.Unknown(), count: Type.Optional(Type.Unknown()), body: Type.Unknown() }) },
        },
      },
      async (request) => ({ params: request.params, query: request.query, count: request.headers['x-count'], body: request.body }),
    );
  },
});

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { extraPacks: [echoPack] });
});
afterAll(async () => t?.close());

const echo = (payload: unknown, url = '/system/fixture/echo/1') => t.inject({ method: 'POST', url, payload: payload as Record<string, unknown> });

describe('request bodies are not type-coerced', () => {
  it.each([
    ['null for a string', { name: null }, '/name'],
    ['a number for a string', { name: 12 }, '/name'],
    ['a string for a number', { count: '12' }, '/count'],
    ['a string for a boolean', { on: 'true' }, '/on'],
    ['a number for a boolean', { on: 1 }, '/on'],
    ['a bare string for an array', { tags: 'work' }, '/tags'],
    ['a number inside a string array', { tags: [1] }, '/tags/0'],
    ['null for a string-or-number', { either: null }, '/either'],
    ['a boolean for a string-or-number', { either: true }, '/either'],
  ])('refuses %s with 400 naming the field', async (_label, payload, pointer) => {
    const res = await echo(payload);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json().errors).toEqual(expect.arrayContaining([expect.objectContaining({ in: 'body', pointer: `#${pointer}` })]));
  });

  it('lets well-typed values through unchanged', async () => {
    const payload = { name: 'x', count: 3, on: false, tags: ['a', 'b'], either: 18 };
    const res = await echo(payload);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().body).toEqual(payload);
  });

  it('still coerces the text parts: params, querystring and headers (header names in any case)', async () => {
    const res = await t.inject({ method: 'POST', url: '/system/fixture/echo/7?limit=20&tags=work', headers: { 'x-count': '5' }, payload: {} });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ params: { n: 7 }, query: { limit: 20, tags: ['work'] }, count: 5 });
    const badHeader = await t.inject({ method: 'POST', url: '/system/fixture/echo/7', headers: { 'x-count': 'many' }, payload: {} });
    expect(badHeader.statusCode).toBe(400);
    expect(badHeader.json().errors[0]).toMatchObject({ in: 'headers' });
  });
});

describe('the issue 10 examples through the real routes', () => {
  it('a null attribute is refused, not evaluated as ""', async () => {
    const created = await t.inject({
      method: 'POST',
      url: '/system/flags',
      payload: { key: 'coerce-null', enabled: true, rolloutPercentage: 0, rules: [{ attribute: 'x', operator: 'in', values: [''] }] },
    });
    expect(created.statusCode, created.body).toBe(201);
    const res = await t.inject({ method: 'POST', url: '/system/flags/evaluate', payload: { context: { key: 'u1', attributes: { x: null } }, flags: ['coerce-null'] } });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().errors[0].pointer).toMatch(/^#\/context\/attributes\/x/);
  });

  it('a bare string or a number for a list of flag keys is refused, not wrapped or stringified', async () => {
    for (const flags of ['coerce-null', [1]]) {
      const res = await t.inject({ method: 'POST', url: '/system/flags/evaluate', payload: { context: { key: 'u1' }, flags } });
      expect(res.statusCode, res.body).toBe(400);
    }
  });
});
