import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePack } from '../../src/pack.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

// Pitfall: `trustProxy: true` trusts the leftmost X-Forwarded-For, which the client writes, and
// Fastify 5.12 ignores a hop count. Only a list of the load balancer's addresses is safe.
// inject() connects from 127.0.0.1.

const echoIp = definePack({
  name: 'test-echo-ip',
  code: 'T0',
  description: 'test only: answers with request.ip',
  async routes(app) {
    app.get(
      '/echo-ip',
      {
        config: { public: true },
        schema: { tags: ['test'], summary: 'The client address the kernel sees', response: { 200: Type.Object({ ip: Type.String() }) } },
      },
      async (request) => ({ ip: request.ip }),
    );
  },
});

const ipSeenBy = async (app: FastifyInstance, forwardedFor?: string): Promise<string> => {
  const res = await app.inject({ method: 'GET', url: '/echo-ip', headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {} });
  expect(res.statusCode).toBe(200);
  return res.json<{ ip: string }>().ip;
};

let t: TestApp;
let behindLoopbackProxy: FastifyInstance;
let behindProxyList: FastifyInstance;
beforeAll(async () => {
  t = await createTestApp({ TRUST_PROXY: '' }, { extraPacks: [echoIp] });
  behindLoopbackProxy = await t.another({ TRUST_PROXY: '127.0.0.1' });
  behindProxyList = await t.another({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' });
});
afterAll(async () => t?.close());

describe('client address (pitfall: trustProxy true trusts the client-written X-Forwarded-For)', () => {
  it('ignores X-Forwarded-For when TRUST_PROXY is unset', async () => {
    expect(await ipSeenBy(t.app)).toBe('127.0.0.1');
    expect(await ipSeenBy(t.app, '1.2.3.4')).toBe('127.0.0.1');
  });

  it('takes the rightmost untrusted address behind a trusted proxy, never the client-written leftmost one', async () => {
    expect(await ipSeenBy(behindLoopbackProxy, '9.9.9.9')).toBe('9.9.9.9');
    expect(await ipSeenBy(behindLoopbackProxy, '6.6.6.6, 9.9.9.9')).toBe('9.9.9.9');
    // 10.1.2.3 is not in this instance's list, so it is the client as far as it can tell.
    expect(await ipSeenBy(behindLoopbackProxy, '6.6.6.6, 10.1.2.3')).toBe('10.1.2.3');
  });

  it('skips every hop in a CIDR list', async () => {
    expect(await ipSeenBy(behindProxyList, '6.6.6.6, 9.9.9.9, 10.1.2.3')).toBe('9.9.9.9');
    expect(await ipSeenBy(behindProxyList)).toBe('127.0.0.1');
  });
});
