import { Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePack } from '../../src/pack.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { get, idleSockets } from './http-client.js';

// Pitfall: Fastify's own 503-while-closing (`return503OnClosing`) is a hard-coded JSON body that
// skips the error handler. A request arriving on an open keep-alive connection while the app
// closes must get a normal answer or a problem+json, never that body.

const FASTIFY_CLOSING_BODY = '{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}';

// Holds app.close() inside preClose (after the kernel has marked the instance draining and Fastify
// has marked itself closing, before the server stops accepting on open connections).
let entered: () => void = () => {};
const closingEntered = new Promise<void>((r) => (entered = r));
let release: () => void = () => {};
const released = new Promise<void>((r) => (release = r));
const closingGate = definePack({
  name: 'test-closing-gate',
  code: 'T0',
  description: 'test only: pauses shutdown so requests can arrive while the app is closing',
  async register(app) {
    app.addHook('preClose', async () => {
      entered();
      await released;
    });
  },
});

let t: TestApp;
let origin: string;
beforeAll(async () => {
  t = await createTestApp({}, { extraPacks: [closingGate] });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  origin = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  release();
  await t?.close();
});

describe('answers while closing (pitfall: Fastify 503-on-closing is hard-coded JSON)', () => {
  it('serves requests on existing keep-alive connections normally, as problem+json for errors, with Connection: close', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    try {
      const warm = await Promise.all([get(agent, origin, '/problems'), get(agent, origin, '/problems')]);
      expect(warm.map((r) => r.status)).toEqual([200, 200]);
      expect(idleSockets(agent)).toBe(2);

      const closing = t.app.close();
      await closingEntered;
      expect(t.app.lifecycle.draining).toBe(true);

      const [known, unknown] = await Promise.all([get(agent, origin, '/problems'), get(agent, origin, '/no-such-route')]);
      for (const answer of [known, unknown]) {
        expect(answer.reusedSocket).toBe(true);
        expect(answer.body).not.toBe(FASTIFY_CLOSING_BODY);
        expect(answer.body).not.toMatch(/"code":"FST_/);
        expect(answer.headers.connection).toBe('close');
      }
      expect(known.status).toBe(200);
      expect(known.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(known.body).items.length).toBeGreaterThan(0);

      expect(unknown.status).toBe(404);
      expect(unknown.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(unknown.body)).toMatchObject({ type: '/problems/route-not-found', status: 404 });

      release();
      await closing;
    } finally {
      agent.destroy();
    }
  });
});
