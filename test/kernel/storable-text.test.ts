import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

/**
 * Free-form JSON that routes store as they get it (a notification's payload, a config value):
 * valid JSON that PostgreSQL cannot hold answered 500 from the driver. The kernel now refuses it
 * with a 400 naming the JSON pointer, on every route (the bad-input sweep checks them all).
 */
let t: TestApp;
beforeAll(async () => {
  process.env.NOTIFY_SECRET_STORABLE = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
  t = await createTestApp();
  const channel = await t.inject({ method: 'POST', url: '/system/notify/channels', payload: { name: 'storable-sub', type: 'webhook', events: ['storable.*'], config: { url: 'https://hooks.example.com/x', secretEnvs: ['NOTIFY_SECRET_STORABLE'] } } });
  expect(channel.statusCode, channel.body).toBe(201);
});
afterAll(async () => t?.close());

const notify = (payload: string) => t.inject({ method: 'POST', url: '/system/notify', payload, headers: { 'content-type': 'application/json' } });
const putConfig = (payload: string) => t.inject({ method: 'POST', url: '/system/config', payload, headers: { 'content-type': 'application/json' } });

describe('input no PostgreSQL column can hold', () => {
  it('a notification payload holding \\u0000, a lone surrogate or 6,000 levels of nesting is a 400 naming where', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['{"type":"storable.nul","payload":{"msg":"a\\u0000b"}}', '#/payload/msg', /NUL/],
      ['{"type":"storable.surrogate","payload":{"msg":"\\ud800"}}', '#/payload/msg', /surrogate/],
      ['{"type":"storable.key","payload":{"a\\u0000":1}}', '#/payload/a\u0000', /NUL/],
      [`{"type":"storable.deep","payload":{"x":${'['.repeat(6000)}${']'.repeat(6000)}}}`, '', /nest deeper than 64/],
    ];
    for (const [body, pointer, message] of cases) {
      const res = await notify(body);
      expect(res.statusCode, res.body.slice(0, 300)).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      const error = res.json<{ errors: Array<{ in: string; pointer: string; message: string }> }>().errors[0]!;
      expect(error.in).toBe('body');
      expect(error.message).toMatch(message);
      if (pointer) expect(error.pointer).toBe(pointer);
    }
    // A well-formed pair (an emoji) and 64 levels are fine.
    const emoji = await notify('{"type":"storable.emoji","payload":{"msg":"\\ud83d\\ude00"}}');
    expect(emoji.statusCode, emoji.body).toBe(202);
    const nested = await notify(`{"type":"storable.ok","payload":{"x":${'['.repeat(61)}${']'.repeat(61)}}}`);
    expect(nested.statusCode, nested.body).toBe(202);
  });

  it('a config value holding \\u0000 is a 400, not a driver error', async () => {
    const res = await putConfig('{"key":"storable.nul","value":"a\\u0000b","type":"string"}');
    expect(res.statusCode, res.body.slice(0, 300)).toBe(400);
    expect(res.json().errors[0]).toMatchObject({ in: 'body', pointer: '#/value' });
  });

  it('a NUL in a query value is a 400 naming the parameter', async () => {
    const res = await t.inject({ method: 'GET', url: '/system/logs?level=err%00or' });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0]).toMatchObject({ in: 'querystring', pointer: '#/level' });
  });
});
