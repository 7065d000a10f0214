import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE, shieldFixturePack } from '../../plugins/read-only-shield/test-routes.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

/**
 * HEAD is answered by the GET handler (Fastify's exposeHeadRoutes), so everything that decides
 * by method treats it as the GET it is (issue 10, item 6): the same scope, the same rate limit
 * (plugins/rate-limits tests), never frozen or refused in read-only mode like a write, refused
 * in maintenance mode like a read.
 */
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { extraPacks: [shieldFixturePack] });
});
afterAll(async () => t?.close());

describe('HEAD requests', () => {
  it('exist for every GET route with the same scope, public flag, shield and freeze settings', () => {
    const gets = t.app.routeCatalog.filter((r) => r.method === 'GET' && !r.url.startsWith('/docs'));
    expect(gets.length).toBeGreaterThan(20);
    for (const get of gets) {
      const head = t.app.routeCatalog.find((r) => r.method === 'HEAD' && r.url === get.url);
      expect(head, get.url).toBeDefined();
      expect({ scope: head!.scope, public: head!.public, shield: head!.config.shield, freeze: head!.config.freeze }, get.url).toEqual({
        scope: get.scope,
        public: get.public,
        shield: get.config.shield,
        freeze: get.config.freeze,
      });
    }
  });

  it('needs the same key and scope as GET', async () => {
    expect((await t.app.inject({ method: 'HEAD', url: '/system/health' })).statusCode).toBe(401);
    const flagsOnly = { authorization: `Bearer ${(await t.keyWith(['flags:read'])).token}` };
    expect((await t.inject({ method: 'HEAD', url: '/system/health', headers: flagsOnly })).statusCode).toBe(403);
    expect((await t.inject({ method: 'HEAD', url: '/system/flags', headers: flagsOnly })).statusCode).toBe(200);
  });

  it('shows in the route index like its GET, rate limit included', async () => {
    const routes = (await t.inject({ method: 'GET', url: '/system/routes?prefix=/system/health&limit=500' })).json().items as Array<Record<string, unknown>>;
    const get = routes.find((r) => r.method === 'GET' && r.url === '/system/health');
    const head = routes.find((r) => r.method === 'HEAD' && r.url === '/system/health');
    expect(head).toEqual({ ...get, method: 'HEAD' });
  });

  it('is a read for the change freeze and the read-only shield, and refused in maintenance mode', async () => {
    const freeze = (enabled: boolean) => t.inject({ method: 'POST', url: '/system/maintenance/freeze', payload: { enabled, reason: 'head test' } });
    const mode = (m: string) => t.inject({ method: 'POST', url: '/system/maintenance/state', payload: { mode: m, reason: 'head test' } });
    const reader = { authorization: `Bearer ${(await t.keyWith(['system:read'])).token}` };
    expect((await freeze(true)).statusCode).toBe(200);
    try {
      expect((await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {} })).statusCode).toBe(423);
      expect((await t.inject({ method: 'HEAD', url: `${FIXTURE}/items` })).statusCode).toBe(200);
    } finally {
      await freeze(false);
    }
    expect((await mode('read_only')).statusCode).toBe(200);
    try {
      expect((await t.inject({ method: 'HEAD', url: `${FIXTURE}/items`, headers: reader })).statusCode).toBe(200);
    } finally {
      await mode('normal');
    }
    expect((await mode('maintenance')).statusCode).toBe(200);
    try {
      expect((await t.inject({ method: 'GET', url: `${FIXTURE}/items`, headers: reader })).statusCode).toBe(503);
      expect((await t.inject({ method: 'HEAD', url: `${FIXTURE}/items`, headers: reader })).statusCode).toBe(503);
    } finally {
      await mode('normal');
    }
  });
});
