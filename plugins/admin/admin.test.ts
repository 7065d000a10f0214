import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordAudit, type Actor, type AuditEntry } from '../../src/audit/writer.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

const OPS = '/system/admin/operations';
const alice: Actor = { type: 'client', id: '7', keyId: 'k_alice' };
const bob: Actor = { type: 'client', id: '8', keyId: 'k_bob' };

/** Writes one audit entry with the kernel's writer (what app.audit.record calls), inside a transaction. */
const record = (entry: AuditEntry) => t.app.db.transaction((tx) => recordAudit(tx, entry));

type Page = { items: Array<Record<string, unknown> & { id: number }>; nextCursor: string | null };
const list = async (query: string): Promise<Page> => {
  const res = await t.inject({ method: 'GET', url: `${OPS}${query}` });
  expect(res.statusCode, `${query}: ${res.body}`).toBe(200);
  return res.json<Page>();
};
const ids = (page: Page) => page.items.map((o) => o.id);

describe('admin operations (UF)', () => {
  const seeded: Record<string, number> = {};
  beforeAll(async () => {
    // Two records per `when` bucket: before/after `mark`, so since/until can split them.
    seeded.flagCreate = (await record({ actor: alice, operation: 'flag.create', targetType: 'flag', targetId: 'checkout', after: { enabled: false } })).id;
    seeded.flagUpdate = (await record({ actor: alice, operation: 'flag.update', targetType: 'flag', targetId: 'checkout', before: { enabled: false }, after: { enabled: true }, reason: 'launch' })).id;
    seeded.keyRevoke = (await record({ actor: bob, operation: 'api-key.revoke', targetType: 'api-key', targetId: 'k_old', result: 'failure', correlationId: 'req-revoke-1' })).id;
    seeded.flagsUnderscore = (await record({ actor: { type: 'system', id: 'kernel', keyId: null }, operation: 'flagXdelete', targetType: 'flag', targetId: 'x' })).id;
    seeded.config = (await record({ actor: bob, operation: 'config.set', targetType: 'config', targetId: 'timeout', after: { value: 5 } })).id;
  });

  it('lists operations newest first, with every field', async () => {
    const page = await list('');
    expect(ids(page).slice(0, 5)).toEqual([seeded.config, seeded.flagsUnderscore, seeded.keyRevoke, seeded.flagUpdate, seeded.flagCreate]);
    const update = page.items.find((o) => o.id === seeded.flagUpdate)!;
    expect(update).toMatchObject({
      actorType: 'client',
      actorId: '7',
      keyId: 'k_alice',
      operation: 'flag.update',
      targetType: 'flag',
      targetId: 'checkout',
      reason: 'launch',
      before: { enabled: false },
      after: { enabled: true },
      result: 'success',
      correlationId: null,
    });
    expect(new Date(String(update.occurredAt)).toISOString()).toBe(update.occurredAt);
    expect(update.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(update.prevHash).toBe(page.items.find((o) => o.id === seeded.flagCreate)!.hash);
  });

  it('filters by actor, key, operation (exact or prefix), target, result and correlation id', async () => {
    expect(ids(await list('?actorId=7'))).toEqual([seeded.flagUpdate, seeded.flagCreate]);
    expect(ids(await list('?keyId=k_bob'))).toEqual([seeded.config, seeded.keyRevoke]);
    expect(ids(await list('?actorType=system'))).toEqual([seeded.flagsUnderscore]);
    expect(ids(await list('?operation=flag.update'))).toEqual([seeded.flagUpdate]);
    expect(ids(await list('?operation=flag'))).toEqual([]);
    // `.` and `_` are literal in a prefix (no LIKE wildcards): `flag.` does not match `flagXdelete`
    expect(ids(await list('?operationPrefix=flag.'))).toEqual([seeded.flagUpdate, seeded.flagCreate]);
    expect(ids(await list('?operationPrefix=flag_'))).toEqual([]);
    expect(ids(await list('?targetType=flag&targetId=checkout'))).toEqual([seeded.flagUpdate, seeded.flagCreate]);
    expect(ids(await list('?result=failure'))).toEqual([seeded.keyRevoke]);
    expect(ids(await list('?correlationId=req-revoke-1'))).toEqual([seeded.keyRevoke]);
    expect(ids(await list('?actorId=8&operationPrefix=config.'))).toEqual([seeded.config]);
  });

  it('filters by time: since and until are inclusive bounds on occurredAt', async () => {
    const all = await list('?operationPrefix=flag.');
    const [newer, older] = all.items;
    expect(ids(await list(`?operationPrefix=flag.&since=${encodeURIComponent(String(newer!.occurredAt))}`))).toContain(newer!.id);
    expect(ids(await list(`?operationPrefix=flag.&until=${encodeURIComponent(String(older!.occurredAt))}`))).toContain(older!.id);
    expect(ids(await list(`?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`))).toEqual([]);
    expect(ids(await list(`?until=2000-01-01T00:00:00Z`))).toEqual([]);
  });

  it('pages newest first with an opaque cursor, without gaps or repeats', async () => {
    const everything = ids(await list('?limit=500'));
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Page = await list(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...ids(page));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    expect(seen).toEqual(everything);
    expect(pages).toBe(Math.ceil(everything.length / 2));
  });

  it('reads one operation, 404 for an unknown id, 400 for a bad one', async () => {
    const one = await t.inject({ method: 'GET', url: `${OPS}/${seeded.keyRevoke}` });
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ id: seeded.keyRevoke, operation: 'api-key.revoke', result: 'failure' });

    const missing = await t.inject({ method: 'GET', url: `${OPS}/999999` });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(missing.json()).toMatchObject({ type: '/problems/resource-not-found', instance: `${OPS}/999999` });

    for (const id of ['abc', '0', '-1', '1.5', '99999999999999999999']) {
      const res = await t.inject({ method: 'GET', url: `${OPS}/${id}` });
      expect(res.statusCode, id).toBe(400);
      expect(res.json().errors).toContainEqual(expect.objectContaining({ in: 'params', pointer: '#/id' }));
    }
  });

  it('rejects bad filters with 400 problems naming the field', async () => {
    const cases: Array<[string, string]> = [
      ['?colour=red', '#/colour'],
      ['?actorType=robot', '#/actorType'],
      ['?result=maybe', '#/result'],
      ['?since=yesterday', '#/since'],
      ['?until=2024-13-45T00:00:00Z', '#/until'],
      ['?limit=0', '#/limit'],
      ['?limit=501', '#/limit'],
      [`?operation=${'x'.repeat(201)}`, '#/operation'],
      [`?correlationId=${'x'.repeat(129)}`, '#/correlationId'],
      ['?actorId=', '#/actorId'],
    ];
    for (const [query, pointer] of cases) {
      const res = await t.inject({ method: 'GET', url: `${OPS}${query}` });
      expect(res.statusCode, query).toBe(400);
      expect(res.json().type, query).toBe('/problems/validation-failed');
      expect(res.json().errors, query).toContainEqual(expect.objectContaining({ pointer }));
    }
    for (const cursor of ['bogus!', 'bogus', Buffer.from(JSON.stringify(['1 or 1=1'])).toString('base64url'), Buffer.from(JSON.stringify([1, 2])).toString('base64url')]) {
      const res = await t.inject({ method: 'GET', url: `${OPS}?cursor=${cursor}` });
      expect(res.statusCode, cursor).toBe(400);
    }
    const altered = Buffer.from(JSON.stringify(['1 or 1=1'])).toString('base64url');
    expect((await t.inject({ method: 'GET', url: `${OPS}?cursor=${altered}` })).json().type).toBe('/problems/invalid-cursor');
  });
});

describe('admin overview (UF)', () => {
  it('shows the instance, every pack section and the 10 most recent operations', async () => {
    for (let i = 0; i < 12; i++) await record({ actor: alice, operation: 'overview.fill', targetType: 'thing', targetId: i });
    await t.app.jobs.enqueue('overview:test-job', {});
    t.app.overview.add('test-section', () => ({ widgets: 3 }));
    t.app.overview.add('test-broken', () => {
      throw new Error('database password is hunter2');
    });

    const res = await t.inject({ method: 'GET', url: '/system/admin' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.instance).toMatchObject({ id: t.app.lifecycle.instanceId, version: t.app.lifecycle.version, draining: false, driver: t.app.database.driver });
    expect(body.instance.startedAt).toBe(t.app.lifecycle.startedAt.toISOString());
    expect(body.instance.uptimeSeconds).toBeGreaterThanOrEqual(0);

    // Kernel sections (job backlog, batch writers), problem-details' errors, and any pack's own.
    expect(body.sections.jobs).toMatchObject({ queued: 1, due: 1, running: 0, dead: 0 });
    expect(body.sections.batchWriters.writers.map((w: { name: string }) => w.name)).toEqual(expect.arrayContaining(['error_events', 'system_logs']));
    expect(body.sections.errors).toEqual({ lastHour: 0 });
    expect(body.sections['test-section']).toEqual({ widgets: 3 });
    // A failing section does not fail the page, and its error message is not shown.
    expect(body.sections['test-broken']).toEqual({ error: 'unavailable' });
    expect(res.body).not.toContain('hunter2');

    expect(body.recentOperations).toHaveLength(10);
    expect(body.recentOperations.every((o: { operation: string }) => o.operation === 'overview.fill')).toBe(true);
    const recentIds = body.recentOperations.map((o: { id: number }) => o.id);
    expect(recentIds).toEqual([...recentIds].sort((a: number, b: number) => b - a));
  });

  it('counts recorded server errors of the last hour', async () => {
    await t.app.db.execute(
      sql`insert into error_events (occurred_at, kind, message, method, route, url, status_code, correlation_id, instance_id)
          values (now(), 'internal', 'boom', 'GET', '/x', '/x', 500, 'c1', 'i1'),
                 (now() - interval '2 hours', 'internal', 'old', 'GET', '/x', '/x', 500, 'c2', 'i1')`,
    );
    const body = (await t.inject({ method: 'GET', url: '/system/admin' })).json();
    expect(body.sections.errors).toEqual({ lastHour: 1 });
  });

  it('answers 400 to query parameters it does not take, 404 under an unknown admin path', async () => {
    for (const url of ['/system/admin?verbose=1', `${OPS}/verify?from=3`]) {
      const res = await t.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().type).toBe('/problems/validation-failed');
    }
    const res = await t.inject({ method: 'GET', url: '/system/admin/unknown-thing' });
    expect(res.statusCode).toBe(404);
    expect(res.json().type).toBe('/problems/route-not-found');
  });
});

describe('web console (UF)', () => {
  it('serves the page without a key, with a CSP that forbids inline script', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/console' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');

    // Nothing inline for the CSP to block: every script has a src, no style or on* attributes.
    const html = res.body;
    for (const tag of html.match(/<script\b[^>]*>/g) ?? []) expect(tag).toMatch(/\ssrc="\/console\/app\.js"/);
    expect(html).not.toMatch(/<script\b[^>]*>[^<]+<\/script>/);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    expect(html).not.toMatch(/<style\b|\sstyle=/i);
    // The page holds no data: no key, no figures.
    expect(html).not.toContain(t.adminKey);
    expect(html).not.toContain(t.app.lifecycle.instanceId);
  });

  it('serves its script and stylesheet as separate files', async () => {
    const js = await t.app.inject({ method: 'GET', url: '/console/app.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['content-security-policy']).toContain("script-src 'self'");
    expect(js.body).toContain('sessionStorage.getItem(KEY_STORAGE)');
    expect(js.body).not.toMatch(/localStorage|document\.cookie/);
    expect(js.body).not.toMatch(/innerHTML|dangerouslySetInnerHTML|eval\(|new Function/);

    const css = await t.app.inject({ method: 'GET', url: '/console/console.css' });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
  });

  it('calls only API routes that exist', async () => {
    // Every /system path in the script, `${...}` parts read as one path segment each.
    const js = (await t.app.inject({ method: 'GET', url: '/console/app.js' })).body;
    const called = new Set([...js.matchAll(/['`](\/system\/[^'`?]*)/g)].map((m) => m[1]!.replace(/\$\{[^}]*\}/g, ':x').replace(/\/$/, '')));
    expect(called.size).toBeGreaterThan(15);
    const routes = t.app.routeCatalog.map((r) => `${r.method} ${r.url}`);
    const exists = (path: string) =>
      t.app.routeCatalog.some((r) => {
        const want = path.split('/');
        const have = r.url.split('/');
        return want.length === have.length && have.every((seg, i) => seg === want[i] || (seg.startsWith(':') && want[i] === ':x'));
      });
    for (const path of called) expect(exists(path), `${path} (routes: ${routes.length})`).toBe(true);
  });

  it('serves the libraries it imports from node_modules: those files only, cached for a year', async () => {
    const html = (await t.app.inject({ method: 'GET', url: '/console' })).body;
    const js = (await t.app.inject({ method: 'GET', url: '/console/app.js' })).body;
    const named = [...new Set([...`${html}\n${js}`.matchAll(/\/console\/vendor\/[^"'`\s)]+/g)].map((m) => m[0]))].sort();
    expect(named).toEqual([
      '/console/vendor/htm@3.1.1/htm.mjs',
      '/console/vendor/preact@11.2.0/preact.mjs',
      '/console/vendor/uplot@1.6.32/uPlot.esm.js',
      '/console/vendor/uplot@1.6.32/uPlot.min.css',
    ]);
    for (const url of named) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type'], url).toBe(url.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8');
      expect(res.headers['cache-control'], url).toBe('public, max-age=31536000, immutable');
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
      // the very file installed in node_modules
      const pkg = url.split('/')[3]!.split('@')[0]!;
      const file = url.endsWith('.css') ? 'dist/uPlot.min.css' : url.endsWith('esm.js') ? 'dist/uPlot.esm.js' : `dist/${url.split('/').pop()}`;
      expect(res.body, url).toBe(readFileSync(`node_modules/${pkg}/${file}`, 'utf8'));
      const again = await t.app.inject({ method: 'GET', url, headers: { 'if-none-match': `W/${res.headers.etag}` } });
      expect(again.statusCode, url).toBe(304);
    }
    // nothing else under /console/vendor: no directory, no other file, no way up
    for (const url of [
      '/console/vendor/preact@11.2.0/package.json',
      '/console/vendor/preact@11.2.0/',
      '/console/vendor/preact@11.2.0/../../package.json',
      '/console/vendor/preact@11.2.0/%2e%2e/%2e%2e/package.json',
      '/console/vendor/preact@11.2.0/..%2f..%2fpackage.json',
      '/console/vendor/preact@10.0.0/preact.mjs',
      '/console/vendor/preact/preact.mjs',
      '/console/../package.json',
    ]) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(404);
      expect(res.body, url).not.toContain('"name": "preact"');
    }
  });

  it('lets the browser revalidate its own files (ETag, no-cache)', async () => {
    const first = await t.app.inject({ method: 'GET', url: '/console/app.js' });
    expect(first.headers['cache-control']).toBe('no-cache');
    expect(first.headers.etag).toMatch(/^"[\w-]+"$/);
    const again = await t.app.inject({ method: 'GET', url: '/console/app.js', headers: { 'if-none-match': String(first.headers.etag) } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const icon = await t.app.inject({ method: 'GET', url: '/console/favicon.svg' });
    expect([icon.statusCode, icon.headers['content-type']]).toEqual([200, 'image/svg+xml']);
  });

  it('is public in the route catalogue but not in the OpenAPI document', async () => {
    const consoleRoutes = t.app.routeCatalog.filter((r) => r.url.startsWith('/console') && r.method === 'GET');
    expect(consoleRoutes.map((r) => r.url).sort()).toEqual([
      '/console',
      '/console/app.js',
      '/console/console.css',
      '/console/favicon.svg',
      '/console/vendor/htm@3.1.1/htm.mjs',
      '/console/vendor/preact@11.2.0/preact.mjs',
      '/console/vendor/uplot@1.6.32/uPlot.esm.js',
      '/console/vendor/uplot@1.6.32/uPlot.min.css',
    ]);
    expect(consoleRoutes.every((r) => r.public && r.scope === null && r.config.shield === false)).toBe(true);
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/console'))).toEqual([]);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/system/admin', '/system/admin/figures', OPS, `${OPS}/verify`, `${OPS}/{id}`]));
  });
});

describe('request figures (GET /system/admin/figures)', () => {
  type Figures = { instanceId: string; bucketSeconds: number; series: Record<string, Array<number | null>>; recent: Record<string, number | null> };
  const figures = async (): Promise<Figures> => {
    const res = await t.inject({ method: 'GET', url: '/system/admin/figures?minutes=5' });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<Figures>();
  };

  it("counts this instance's responses by kind: 4xx, 5xx, blocked, refused by the shield", async () => {
    const before = (await figures()).recent;
    for (let i = 0; i < 3; i++) expect((await t.app.inject({ method: 'GET', url: '/no-such-route' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/system/admin' })).statusCode).toBe(401);

    const rule = await t.inject({ method: 'POST', url: '/system/security/blocklist', payload: { type: 'user_agent', value: 'FiguresTestScanner*', reason: 'figures test' } });
    expect(rule.statusCode, rule.body).toBe(201);
    await expect.poll(async () => (await t.app.inject({ method: 'GET', url: '/live', headers: { 'user-agent': 'FiguresTestScanner/1' } })).statusCode).toBe(403);

    expect((await t.inject({ method: 'POST', url: '/system/maintenance/state', payload: { mode: 'read_only', reason: 'figures test' } })).statusCode).toBe(200);
    const refused = await t.inject({ method: 'POST', url: '/system/flags', payload: { key: 'figures-test' } });
    expect([refused.statusCode, refused.json().type]).toEqual([503, '/problems/read-only']);
    expect((await t.inject({ method: 'POST', url: '/system/maintenance/state', payload: { mode: 'normal', reason: 'figures test done' } })).statusCode).toBe(200);

    const f = await figures();
    expect(f.instanceId).toBe(t.app.lifecycle.instanceId);
    expect(f.bucketSeconds).toBe(10);
    const after = f.recent;
    expect(after.requests! - before.requests!).toBeGreaterThanOrEqual(9);
    expect(after.status4xx! - before.status4xx!).toBeGreaterThanOrEqual(5); // 3 × 404, a 401, at least one 403
    expect(after.blocked! - before.blocked!).toBeGreaterThanOrEqual(1);
    expect(after.shieldRefused! - before.shieldRefused!).toBe(1);
    expect(after.status5xx! - before.status5xx!).toBe(1);
    expect(after.errorRate).toBe(0); // the shield's 503 is not an error
    expect(after.p99Ms).toBeGreaterThan(0);
    const n = f.series.t!.length;
    expect(n).toBe(30);
    for (const list of Object.values(f.series)) expect(list).toHaveLength(n);
  });

  it('needs a key with system:read, and checks its query', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/system/admin/figures' })).statusCode).toBe(401);
    for (const q of ['minutes=0', 'minutes=61', 'minutes=x', 'window=1h']) {
      const res = await t.inject({ method: 'GET', url: `/system/admin/figures?${q}` });
      expect(res.statusCode, q).toBe(400);
      expect(res.json().type).toBe('/problems/validation-failed');
    }
    expect((await t.inject({ method: 'GET', url: '/system/admin/figures' })).json().series.t).toHaveLength(360);
  });
});
