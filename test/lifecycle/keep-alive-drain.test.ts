import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, serverUrl, type TestDatabase } from '../helpers/database.js';
import { get, idleSockets, sleep, startUpload } from './http-client.js';
import { startServer } from './server-process.js';

// Pitfall: `app.close()` waits for idle keep-alive connections, so shutdown hung for Fastify's
// keepAliveTimeout (72 s); `forceCloseConnections: true` alone drops the in-flight request.
// The real entry point (src/server.ts) is run as a child process and sent SIGTERM.

// An upload to a POST route that does not exist: answered 405 once its body is complete, so it
// stays in flight for as long as the test holds the rest of the body back.
const IN_FLIGHT_PATH = '/problems';
const CONNECTIONS = 4;
// Bounds a hang (keepAliveTimeout is 72 s); not a performance figure.
const EXIT_BOUND_MS = 10_000;
// Starting the child (tsx, PGlite on disk, migrations) is slow on a busy 2-core machine.
const SPAWN_TEST_TIMEOUT_MS = 120_000;

let db: TestDatabase | undefined;
beforeAll(async () => {
  if (serverUrl()) db = await createTestDatabase();
});
afterAll(async () => db?.drop());

async function openIdleConnections(agent: Agent, origin: string) {
  const warm = await Promise.all(Array.from({ length: CONNECTIONS }, () => get(agent, origin, '/problems')));
  expect(warm.map((r) => r.status)).toEqual(Array(CONNECTIONS).fill(200));
  expect(warm.every((r) => r.headers.connection === 'keep-alive')).toBe(true);
  expect(idleSockets(agent)).toBe(CONNECTIONS);
}

describe('keep-alive drain on SIGTERM (pitfall: shutdown hangs for keepAliveTimeout)', () => {
  it('finishes the in-flight request, closes its connection and exits 0 with idle keep-alive clients connected', { timeout: SPAWN_TEST_TIMEOUT_MS }, async () => {
    const server = await startServer({ databaseUrl: db?.url });
    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    try {
      await openIdleConnections(agent, server.origin);
      const upload = await startUpload(server.origin, IN_FLIGHT_PATH);

      server.child.kill('SIGTERM');
      await server.waitForLine(/"msg":"shutting down"/, 10_000);
      // Give close() time to start while the upload is still open: it must wait for it.
      await sleep(300);
      expect(upload.settled).toBe(false);
      expect(server.child.exitCode).toBeNull();

      const answer = await upload.finish();
      expect(answer.status).toBeGreaterThanOrEqual(200);
      expect(answer.status).toBeLessThan(500);
      expect(answer.headers.connection).toBe('close');

      const exit = await server.waitForExit(EXIT_BOUND_MS);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(server.output.some((l) => l.includes('"msg":"shut down cleanly"'))).toBe(true);
    } finally {
      agent.destroy();
      await server.cleanup();
    }
  });

  it('fails readiness and answers requests on idle keep-alive connections with Connection: close during SHUTDOWN_DELAY_MS, then exits 0', { timeout: SPAWN_TEST_TIMEOUT_MS }, async () => {
    const server = await startServer({ databaseUrl: db?.url, env: { SHUTDOWN_DELAY_MS: '2000' } });
    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    try {
      await openIdleConnections(agent, server.origin);

      server.child.kill('SIGTERM');
      await server.waitForLine(/"msg":"shutting down"/, 10_000);

      // Readiness fails first, so the load balancer stops sending; what still arrives is served.
      const [ready, ...during] = await Promise.all([
        get(agent, server.origin, '/ready'),
        ...Array.from({ length: CONNECTIONS - 1 }, () => get(agent, server.origin, '/problems')),
      ]);
      expect(ready!.status).toBe(503);
      expect(ready!.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(ready!.body).toContain('draining');
      expect(during.map((r) => r.status)).toEqual(Array(CONNECTIONS - 1).fill(200));
      for (const answer of [ready!, ...during]) {
        expect(answer.reusedSocket).toBe(true);
        expect(answer.headers.connection).toBe('close');
      }

      const exit = await server.waitForExit(EXIT_BOUND_MS);
      expect(exit).toEqual({ code: 0, signal: null });
    } finally {
      agent.destroy();
      await server.cleanup();
    }
  });
});
