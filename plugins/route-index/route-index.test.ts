import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteEntry } from '../../src/kernel.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { rateLimitedBy } from './index.js';
import type { RouteInfo } from './schemas.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

type Page<T> = { items: T[]; nextCursor: string | null };
const get = async <T>(url: string): Promise<T> => {
  const res = await t.inject({ method: 'GET', url });
  expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
  return res.json<T>();
};
const routes = (query = '') => get<Page<RouteInfo>>(`/system/routes?limit=500${query}`);
const keyOf = (r: Pick<RouteInfo, 'method' | 'url'>) => `${r.method} ${r.url}`;

const PUBLIC = [
  '/console',
  '/console/app.js',
  '/console/console.css',
  '/console/favicon.svg',
  '/console/vendor/htm@3.1.1/htm.mjs',
  '/console/vendor/preact@11.2.0/preact.mjs',
  '/console/vendor/uplot@1.6.32/uPlot.esm.js',
  '/console/vendor/uplot@1.6.32/uPlot.min.css',
  '/live',
  '/metrics',
  '/problems',
  '/problems/:kind',
  '/ready',
];

describe('GET /system/routes (TY)', () => {
  it('lists every route of the catalogue; none lacks a scope but the public ones', async () => {
    const { items, nextCursor } = await routes();
    expect(nextCursor).toBeNull();
    expect(items.map(keyOf).sort()).toEqual(t.app.routeCatalog.map(keyOf).sort());
    // The docs (swagger UI) are listed by the kernel without a pack; everything else has one.
    const unscoped = items.filter((r) => r.scope === null && !r.url.startsWith('/docs'));
    expect([...new Set(unscoped.map((r) => r.url))].sort()).toEqual(PUBLIC);
    expect(unscoped.every((r) => r.public)).toBe(true);
    expect(items.filter((r) => r.public).every((r) => r.scope === null)).toBe(true);
    expect(items.filter((r) => !r.url.startsWith('/docs')).every((r) => r.pack !== null)).toBe(true);
  });

  it('describes each route: pack, summary, tags, scope, shield and rate limit', async () => {
    const { items } = await routes();
    const find = (method: string, url: string) => items.find((r) => r.method === method && r.url === url);
    expect(find('GET', '/system/routes')).toEqual({
      method: 'GET',
      url: '/system/routes',
      pack: 'route-index',
      summary: expect.stringContaining('Every route'),
      tags: ['routes'],
      scope: 'system:read',
      public: false,
      shield: true,
      // the rate-limits pack's default limit counts it
      rateLimited: true,
    });
    expect(find('GET', '/system/admin/operations')).toMatchObject({ pack: 'admin', scope: 'audit:read', shield: true }); // admin callers only, in maintenance
    expect(find('GET', '/console')).toMatchObject({ pack: 'admin', public: true, scope: null, shield: false });
    // Public routes are never shielded (probes must answer in maintenance).
    expect(find('GET', '/live')).toMatchObject({ pack: 'health', public: true, shield: false, rateLimited: false });
  });

  it('filters by pack, method, prefix, scope and public', async () => {
    const all = (await routes()).items;
    const check = async (query: string, want: (r: RouteInfo) => boolean) => {
      const got = (await routes(query)).items.map(keyOf);
      const expected = all.filter(want).map(keyOf);
      expect(got, query).toEqual(expected);
      expect(got.length, query).toBeGreaterThan(0);
    };
    await check('&pack=health', (r) => r.pack === 'health');
    await check('&method=HEAD', (r) => r.method === 'HEAD');
    await check('&prefix=/system/admin', (r) => r.url.startsWith('/system/admin'));
    await check('&scope=audit:read', (r) => r.scope === 'audit:read');
    await check('&public=true', (r) => r.public);
    await check('&public=false', (r) => !r.public);
    await check('&pack=admin&method=GET&public=false', (r) => r.pack === 'admin' && r.method === 'GET' && !r.public);
    expect((await routes('&pack=no-such-pack')).items).toEqual([]);
    expect((await routes('&prefix=/nowhere')).items).toEqual([]);
  });

  it('is sorted by url then method, and pages with an opaque cursor', async () => {
    const all = (await routes()).items.map(keyOf);
    const sorted = [...(await routes()).items].sort((a, b) => (a.url === b.url ? (a.method < b.method ? -1 : 1) : a.url < b.url ? -1 : 1)).map(keyOf);
    expect(all).toEqual(sorted);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Page<RouteInfo> = await get(`/system/routes?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.items.map(keyOf));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 100);
    expect(seen).toEqual(all);
    expect(pages).toBe(Math.ceil(all.length / 7));
  });

  it('rejects bad queries with 400 problems', async () => {
    const cases: Array<[string, string]> = [
      ['?colour=red', '#/colour'],
      ['?method=FETCH', '#/method'],
      ['?method=get', '#/method'],
      ['?public=maybe', '#/public'],
      ['?limit=0', '#/limit'],
      ['?limit=501', '#/limit'],
      [`?prefix=${'x'.repeat(501)}`, '#/prefix'],
      ['?pack=', '#/pack'],
    ];
    for (const [query, pointer] of cases) {
      const res = await t.inject({ method: 'GET', url: `/system/routes${query}` });
      expect(res.statusCode, query).toBe(400);
      expect(res.json().errors, query).toContainEqual(expect.objectContaining({ pointer }));
    }
    // Cursors: not base64url JSON, an id cursor from another list, a key of the wrong types.
    for (const cursor of ['bogus', Buffer.from('[5]').toString('base64url'), Buffer.from('[1,2]').toString('base64url')]) {
      const res = await t.inject({ method: 'GET', url: `/system/routes?cursor=${cursor}` });
      expect(res.statusCode, cursor).toBe(400);
      expect(res.json().type, cursor).toBe('/problems/invalid-cursor');
    }
  });
});

describe('route index per version (TY)', () => {
  const version = () => t.app.lifecycle.version;

  it('recorded this version at start, once, even with a second instance', async () => {
    const other = await t.another();
    const { items } = await get<Page<{ version: string; routeCount: number; recordedBy: string; current: boolean }>>('/system/routes/versions');
    const mine = items.filter((v) => v.version === version());
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ routeCount: t.app.routeCatalog.length, recordedBy: t.app.lifecycle.instanceId, current: true });
    expect(other.lifecycle.instanceId).not.toBe(t.app.lifecycle.instanceId);
    expect(await t.app.routeIndex.service.routesOf(version())).toHaveLength(t.app.routeCatalog.length);
  });

  it('records a version once when several instances record it at the same moment', async () => {
    const sample = t.app.routeIndex.routes().slice(0, 5);
    const results = await Promise.all([1, 2, 3, 4].map((i) => t.app.routeIndex.service.record('9.9.9-race', `instance-${i}`, sample)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await t.app.routeIndex.service.routesOf('9.9.9-race')).toHaveLength(5);
  });

  it('diffs two versions: added, removed and changed routes', async () => {
    const current = t.app.routeIndex.routes();
    // An older deployment: one route did not exist yet, one has since been removed, one changed scope.
    const older = current
      .filter((r) => !(r.method === 'GET' && r.url === '/system/routes/diff'))
      .map((r) => (r.method === 'GET' && r.url === '/system/admin' ? { ...r, scope: 'admin', summary: 'Old overview' } : r));
    older.push({ method: 'DELETE', url: '/system/legacy/:id', pack: 'legacy', summary: 'Gone', tags: ['legacy'], scope: 'system:write', public: false, shield: true, rateLimited: false });
    expect(await t.app.routeIndex.service.record('0.0.1-test', 'old-instance', older)).toBe(true);

    const diff = await get<{
      from: string;
      to: string;
      added: RouteInfo[];
      removed: RouteInfo[];
      changed: Array<{ method: string; url: string; changes: Record<string, { from: unknown; to: unknown }> }>;
    }>(`/system/routes/diff?from=0.0.1-test&to=${version()}`);
    expect(diff.from).toBe('0.0.1-test');
    expect(diff.to).toBe(version());
    expect(diff.added.map(keyOf)).toEqual(['GET /system/routes/diff']);
    expect(diff.removed.map(keyOf)).toEqual(['DELETE /system/legacy/:id']);
    expect(diff.changed).toEqual([
      {
        method: 'GET',
        url: '/system/admin',
        changes: { scope: { from: 'admin', to: 'system:read' }, summary: { from: 'Old overview', to: expect.stringContaining('Overview') } },
      },
    ]);

    const back = await get<typeof diff>(`/system/routes/diff?from=${version()}&to=0.0.1-test`);
    expect(back.added.map(keyOf)).toEqual(['DELETE /system/legacy/:id']);
    expect(back.removed.map(keyOf)).toEqual(['GET /system/routes/diff']);
    expect(back.changed[0]!.changes.scope).toEqual({ from: 'system:read', to: 'admin' });

    const same = await get<typeof diff>(`/system/routes/diff?from=${version()}&to=${version()}`);
    expect(same).toMatchObject({ added: [], removed: [], changed: [] });
  });

  it('lists versions newest first with a cursor', async () => {
    const all = (await get<Page<{ id: number; version: string }>>('/system/routes/versions')).items;
    expect(all.map((v) => v.id)).toEqual([...all.map((v) => v.id)].sort((a, b) => b - a));
    expect(all.map((v) => v.version)).toEqual(expect.arrayContaining([version(), '0.0.1-test', '9.9.9-race']));
    const first = await get<Page<{ id: number }>>('/system/routes/versions?limit=1');
    expect(first.items.map((v) => v.id)).toEqual([all[0]!.id]);
    const second = await get<Page<{ id: number }>>(`/system/routes/versions?limit=1&cursor=${first.nextCursor}`);
    expect(second.items.map((v) => v.id)).toEqual([all[1]!.id]);
  });

  it('answers 404 for an unrecorded version and 400 for bad queries', async () => {
    const missing = await t.inject({ method: 'GET', url: `/system/routes/diff?from=0.0.0-never&to=${version()}` });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ type: '/problems/resource-not-found', version: '0.0.0-never' });
    const missingTo = await t.inject({ method: 'GET', url: `/system/routes/diff?from=${version()}&to=nope` });
    expect(missingTo.statusCode).toBe(404);
    expect(missingTo.json().version).toBe('nope');

    for (const query of ['', `?from=${version()}`, `?to=${version()}`, `?from=&to=${version()}`, `?from=${'1'.repeat(65)}&to=1`, `?from=1&to=2&extra=3`]) {
      const res = await t.inject({ method: 'GET', url: `/system/routes/diff${query}` });
      expect(res.statusCode, query).toBe(400);
      expect(res.json().type).toBe('/problems/validation-failed');
    }
    for (const query of ['?limit=0', '?cursor=bogus', '?version=1']) {
      expect((await t.inject({ method: 'GET', url: `/system/routes/versions${query}` })).statusCode, query).toBe(400);
    }
  });
});

describe('rate-limit column', () => {
  // Widened to string: the rate-limits pack types `app.rateLimits`, and these fakes are partial on purpose.
  const RATE_LIMITS: string = 'rateLimits';
  const entry = (config: Record<string, unknown>): RouteEntry => ({ method: 'GET', url: '/x', pack: 'p', scope: 'system:read', public: false, summary: null, tags: [], config });

  it('asks the rate-limits pack when it describes routes', async () => {
    const app = Fastify();
    app.decorate(RATE_LIMITS, { describeRoute: (method: string, url: string) => (url === '/x' ? { limited: method === 'GET', max: 10 } : false) });
    const limited = rateLimitedBy(app);
    expect(limited(entry({}))).toBe(true);
    expect(limited({ ...entry({}), method: 'POST' })).toBe(false);
    expect(limited({ ...entry({}), url: '/y' })).toBe(false);
    await app.close();
  });

  it('reads config.rateLimit when the limiter does not describe routes, and says no without a limiter', async () => {
    const withLimiter = Fastify();
    withLimiter.decorate(RATE_LIMITS, {});
    expect(rateLimitedBy(withLimiter)(entry({}))).toBe(true);
    expect(rateLimitedBy(withLimiter)(entry({ rateLimit: false }))).toBe(false);
    const without = Fastify();
    expect(rateLimitedBy(without)(entry({}))).toBe(false);
    await withLimiter.close();
    await without.close();
  });
});
