import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { BULK_BODY_LIMIT } from '../../plugins/blocklist/routes.js';

/**
 * A sweep over every route in the OpenAPI document: whatever a pack adds, malformed input gets a
 * 4xx problem+json, never a 500, a crash or a stack trace.
 */
interface OpenApiOperation {
  parameters?: Array<{ in: string; name: string; required?: boolean; schema?: { type?: string; pattern?: string } }>;
  requestBody?: unknown;
}
type OpenApiDoc = { paths: Record<string, Record<string, OpenApiOperation>> };

let t: TestApp;
let doc: OpenApiDoc;
const BODY_LIMIT = 4096;
/** Routes that raise their own body limit above `BODY_LIMIT` (Fastify's per-route `bodyLimit`). */
const ROUTE_BODY_LIMITS: Record<string, number> = { 'POST /system/security/blocklist/bulk': BULK_BODY_LIMIT };

beforeAll(async () => {
  // No default rate limit: this file sends well over 1,000 requests a minute across every route.
  t = await createTestApp({ BODY_LIMIT, RATE_LIMIT_DEFAULT_MAX: 0 });
  doc = (await t.inject({ method: 'GET', url: '/docs/json' })).json<OpenApiDoc>();
});
afterAll(async () => t?.close());

function sampleParam(schema: { type?: string; pattern?: string } | undefined): string {
  if (schema?.type === 'integer' || schema?.type === 'number') return '1';
  if (schema?.pattern?.includes('0-9a-f') || schema?.pattern?.includes('a-f0-9')) return 'a'.repeat(32);
  return 'x';
}

function operations(): Array<{ method: string; path: string; url: string; op: OpenApiOperation }> {
  const out = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    if (path.startsWith('/docs')) continue;
    for (const [method, op] of Object.entries(methods)) {
      const url = path.replace(/\{(\w+)\}/g, (_, name: string) =>
        sampleParam(op.parameters?.find((p) => p.in === 'path' && p.name === name)?.schema),
      );
      out.push({ method: method.toUpperCase(), path, url, op });
    }
  }
  return out;
}

function expectProblem(res: LightMyRequestResponse, statuses: number[], label: string): void {
  expect(statuses, `${label}: got ${res.statusCode} ${res.body.slice(0, 200)}`).toContain(res.statusCode);
  expect(res.headers['content-type'], label).toMatch(/^application\/problem\+json/);
  const body = res.json<Record<string, unknown>>();
  expect(body, label).toMatchObject({ status: res.statusCode, type: expect.stringMatching(/^\/problems\//), title: expect.any(String) });
  expect(body.correlationId, label).toBe(res.headers['x-request-id']);
  expect(res.body, label).not.toMatch(/\bat .+\.(ts|js):\d+|node_modules|SELECT |syntax error at/i);
}

async function send(opts: InjectOptions): Promise<LightMyRequestResponse> {
  return t.inject(opts);
}

describe('bad input on every route', () => {
  it('finds the routes to sweep', () => {
    expect(operations().length).toBeGreaterThan(5);
  });

  it('rejects unknown query fields and bad query values', async () => {
    for (const { method, url, op, path } of operations()) {
      const query = op.parameters?.filter((p) => p.in === 'query') ?? [];
      if (query.length === 0) continue;
      const label = `${method} ${path}`;
      expectProblem(await send({ method: method as InjectOptions['method'], url: `${url}?zz_unknown=1` }), [400, 401, 403], `${label} unknown query`);
      if (query.some((p) => p.name === 'limit')) {
        for (const bad of ['0', '501', '-1', 'abc', '1e999', '99999999999999999999']) {
          expectProblem(await send({ method: method as InjectOptions['method'], url: `${url}?limit=${bad}` }), [400, 401, 403], `${label} limit=${bad}`);
        }
      }
      if (query.some((p) => p.name === 'cursor')) {
        expectProblem(await send({ method: method as InjectOptions['method'], url: `${url}?cursor=${'A'.repeat(600)}` }), [400, 401, 403], `${label} long cursor`);
        expectProblem(await send({ method: method as InjectOptions['method'], url: `${url}?cursor=bm9wZQ` }), [400, 401, 403], `${label} forged cursor`);
        // Decodes as a cursor but holds no id: a list that reads the key by hand would pass NaN on.
        const idless = Buffer.from(JSON.stringify(['x'])).toString('base64url');
        expectProblem(await send({ method: method as InjectOptions['method'], url: `${url}?cursor=${idless}` }), [400, 401, 403], `${label} id-less cursor`);
        const nul = await send({ method: method as InjectOptions['method'], url: `${url}?cursor=a%00b` });
        expectProblem(nul, [400], `${label} NUL in the query`);
        expect(nul.json<{ errors: Array<{ in: string; message: string }> }>().errors[0]).toMatchObject({ in: 'querystring', message: expect.stringMatching(/NUL/) });
      }
      if (query.some((p) => p.name === 'since')) {
        expectProblem(await send({ method: method as InjectOptions['method'], url: `${url}?since=yesterday` }), [400, 401, 403], `${label} since`);
      }
    }
  });

  it('rejects malformed path parameters', async () => {
    for (const { method, path, op } of operations()) {
      const params = op.parameters?.filter((p) => p.in === 'path') ?? [];
      if (params.length === 0) continue;
      for (const bad of ['-1', '0', '1.5', '99999999999999999999', "1';drop table x", '%00', 'A'.repeat(300)]) {
        const url = path.replace(/\{(\w+)\}/g, () => encodeURIComponent(bad));
        const res = await send({ method: method as InjectOptions['method'], url });
        // A string param may accept some of these; then the resource is simply not found.
        expectProblem(res, [400, 401, 403, 404, 414], `${method} ${path} with ${bad}`);
      }
    }
  });

  it('refuses integer path parameters not written in plain decimal digits (`/blocklist/1e3` is not rule 1000)', async () => {
    let swept = 0;
    for (const { method, path, op } of operations()) {
      const params = op.parameters?.filter((p) => p.in === 'path') ?? [];
      if (params.length === 0 || !params.every((p) => p.schema?.type === 'integer')) continue;
      swept++;
      for (const bad of ['1e3', '1E3', '0x3e8', '1000.0', '+1000', '01000', ' 1000', '0b1', '1_000']) {
        const url = path.replace(/\{(\w+)\}/g, () => encodeURIComponent(bad));
        const res = await send({ method: method as InjectOptions['method'], url });
        expectProblem(res, [400], `${method} ${path} with ${bad}`);
      }
    }
    expect(swept).toBeGreaterThan(10);
  });

  it('rejects malformed bodies on every route that takes one', async () => {
    const withBody = operations().filter((o) => o.op.requestBody);
    for (const { method, url, path } of withBody) {
      const label = `${method} ${path}`;
      const m = method as InjectOptions['method'];
      const json = { 'content-type': 'application/json' };
      expectProblem(await send({ method: m, url, headers: json, payload: '{"a": ' }), [400], `${label} invalid JSON`);
      expectProblem(await send({ method: m, url, headers: json, payload: '' }), [400], `${label} empty body`);
      expectProblem(await send({ method: m, url, headers: { 'content-type': 'text/plain' }, payload: 'hello' }), [415], `${label} text/plain`);
      expectProblem(await send({ method: m, url, headers: { 'content-type': 'application/xml' }, payload: '<a/>' }), [415], `${label} xml`);
      expectProblem(await send({ method: m, url, headers: json, payload: JSON.stringify({ x: 'y'.repeat((ROUTE_BODY_LIMITS[label] ?? BODY_LIMIT) * 2) }) }), [413], `${label} oversized`);
      expectProblem(await send({ method: m, url, headers: json, payload: '{"__proto__": {"admin": true}}' }), [400], `${label} __proto__`);
      expectProblem(await send({ method: m, url, headers: json, payload: '{"constructor": {"prototype": {"admin": true}}}' }), [400], `${label} constructor`);
      expectProblem(await send({ method: m, url, headers: json, payload: JSON.stringify({ zz_unknown_field: 1 }) }), [400], `${label} unknown field`);
      expectProblem(await send({ method: m, url, headers: json, payload: '[1,2,3]' }), [400], `${label} array body`);
      expectProblem(await send({ method: m, url, headers: json, payload: '"str"' }), [400], `${label} string body`);
      const deep = `${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`;
      expectProblem(await send({ method: m, url, headers: json, payload: deep }), [400, 413], `${label} deep nesting`);
      const invalidUtf8 = Buffer.concat([Buffer.from('{"zz":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
      expectProblem(await send({ method: m, url, headers: json, payload: invalidUtf8 }), [400], `${label} invalid UTF-8`);
      // Input no PostgreSQL column can hold is refused by the kernel before the route's schema
      // (src/storable-text.ts), whatever the route's own body schema would say about the field.
      for (const [payload, message, what] of [
        ['{"zz\\u0000": 1}', /NUL/, 'NUL in a key'],
        ['{"zz": "a\\u0000b"}', /NUL/, 'NUL in a value'],
        ['{"zz": "\\ud800"}', /surrogate/, 'lone surrogate'],
        [`{"zz": ${'['.repeat(100)}${']'.repeat(100)}}`, /nest deeper/, '100 levels deep'],
      ] as const) {
        const res = await send({ method: m, url, headers: json, payload });
        expectProblem(res, [400], `${label} ${what}`);
        expect(res.json<{ errors: Array<{ in: string; message: string }> }>().errors[0], `${label} ${what}`).toMatchObject({ in: 'body', message: expect.stringMatching(message) });
      }
    }
  });

  it('rejects an invalid X-Request-ID by replacing it, never echoing it', async () => {
    for (const bad of ['has space', 'a'.repeat(129), '<script>', 'ok\u00e9']) {
      const res = await send({ method: 'GET', url: '/nope', headers: { 'x-request-id': bad } });
      expect(res.headers['x-request-id']).not.toBe(bad);
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
    const ok = await send({ method: 'GET', url: '/nope', headers: { 'x-request-id': 'deploy-42:step.7_a' } });
    expect(ok.headers['x-request-id']).toBe('deploy-42:step.7_a');
  });
});
