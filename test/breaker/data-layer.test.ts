/**
 * Breaker findings on the data layer (notifications, exports, imports), written by an outside
 * tester from the README only. Each `it.fails` pins a defect: it asserts the expected behaviour,
 * fails today, and turns red (as "expected to fail but passed") once the defect is fixed.
 * Reproductions against real processes are in `.scratch/FINDINGS.md`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

// The exports, imports and retention findings are fixed; their tests now live in
// plugins/exports/exports.test.ts, plugins/retention/retention.test.ts and test/kernel/jobs.test.ts.
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

describe('breaker: notifications', () => {
  // Rows are only written (and the failures below only happen) when a channel subscribes to the type.
  beforeAll(async () => {
    process.env.NOTIFY_SECRET_BREAKER = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    const channel = await t.inject({ method: 'POST', url: '/system/notify/channels', payload: { name: 'breaker-sub', type: 'webhook', events: ['breaker.*'], config: { url: 'https://hooks.example.com/x', secretEnvs: ['NOTIFY_SECRET_BREAKER'] } } });
    expect(channel.statusCode, channel.body).toBe(201);
  });
  const notify = (payload: string) => t.inject({ method: 'POST', url: '/system/notify', payload, headers: { 'content-type': 'application/json' } });

  // A JSON body 5,000+ arrays deep (under BODY_LIMIT: 12 kB) answers 500 "Maximum call stack size
  // exceeded" instead of a 400; each is recorded as an error event. (4,000 deep is accepted.)
  it.fails('a deeply nested payload is a 4xx, not a 500', async () => {
    const depth = 6000;
    const res = await notify(`{"type":"breaker.deep","payload":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}`);
    expect(res.statusCode, res.body.slice(0, 300)).toBeLessThan(500);
  });

  // Valid JSON that PostgreSQL's jsonb cannot hold: "\u0000" (22P05 unsupported Unicode escape
  // sequence) and a lone surrogate "\ud800" (22P02). Both answer 500 instead of a 400/422.
  it.fails('a payload string holding \\u0000 is a 4xx, not a 500', async () => {
    const res = await notify('{"type":"breaker.nul","payload":{"msg":"a\\u0000b"}}');
    expect(res.statusCode, res.body.slice(0, 300)).toBeLessThan(500);
  });

  it.fails('a payload string holding a lone surrogate is a 4xx, not a 500', async () => {
    const res = await notify('{"type":"breaker.surrogate","payload":{"msg":"\\ud800"}}');
    expect(res.statusCode, res.body.slice(0, 300)).toBeLessThan(500);
  });
});
