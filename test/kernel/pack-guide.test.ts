import { Type } from '@sinclair/typebox';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { Gauge } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allPacks } from '../../plugins/index.js';
import { jobSchedules } from '../../src/jobs/table.js';
import { definePack } from '../../src/pack.js';
import { authHeader, createTestApp, type TestApp } from '../helpers/app.js';

/**
 * What docs/packs.md tells a pack author, pinned: hook order (sections 2 and 4), HEAD twins,
 * perInstance jobs (6), gauges with collect() and no instance label of ours (7a).
 */

/** What a pack's hooks saw, per pack. */
interface Seen {
  rootHook: number;
  scopeHook: number;
  routeHook: number;
  callerSeen: boolean[];
  responses: number[];
  perInstanceRuns: number;
  sharedRuns: number;
  collects: number;
}
const newSeen = (): Seen => ({ rootHook: 0, scopeHook: 0, routeHook: 0, callerSeen: [], responses: [], perInstanceRuns: 0, sharedRuns: 0, collects: 0 });

const schema = { tags: ['guide'], summary: 'guide', response: { 200: Type.Object({ ok: Type.Boolean() }) } };

/** A pack with a hook of each kind, a route needing `system:read` and a freezable write. */
function watcherPack(name: string, seen: Seen) {
  return definePack({
    name,
    code: 'GU',
    description: 'test pack that records what its hooks see',
    async register(app) {
      app.addHook('onRequest', (request, _reply, done) => {
        if (request.url.startsWith(`/system/${name}`)) {
          seen.rootHook++;
          seen.callerSeen.push(request.caller !== null);
        }
        done();
      });
      app.addHook('onResponse', (request, reply, done) => {
        if (request.url.startsWith(`/system/${name}`)) seen.responses.push(reply.statusCode);
        done();
      });
      app.jobs.definePeriodic({ name: `${name}:per-instance`, intervalMs: 3_600_000, perInstance: true, handler: async () => void seen.perInstanceRuns++ });
      app.jobs.definePeriodic({ name: `${name}:shared`, intervalMs: 3_600_000, handler: async () => void seen.sharedRuns++ });
      new Gauge({
        name: `valhalla_${name.replace(/-/g, '_')}_collected`,
        help: 'how often /metrics asked',
        registers: [app.metrics],
        collect() {
          this.set(++seen.collects);
        },
      });
    },
    routes: async (app) => {
      app.addHook('onRequest', (_request, _reply, done) => {
        seen.scopeHook++;
        done();
      });
      const routeHook = (_request: unknown, _reply: unknown, done: () => void) => {
        seen.routeHook++;
        done();
      };
      app.get(`/system/${name}`, { config: { scope: 'system:read' }, onRequest: routeHook, schema }, async () => ({ ok: true }));
      app.post(`/system/${name}`, { config: { scope: 'system:read', freeze: true }, onRequest: routeHook, schema }, async () => ({ ok: true }));
    },
  });
}

const late = newSeen();
let t: TestApp;
beforeAll(async () => {
  // extraPacks go at the end of the list, where pack:new puts a new pack.
  t = await createTestApp({}, { extraPacks: [watcherPack('late-watcher', late)] });
});
afterAll(async () => t?.close());

const reset = (seen: Seen) => Object.assign(seen, newSeen());

describe('hook order (docs/packs.md, "Hook order")', () => {
  it("a pack at the end of the list never sees what authentication, rate limit, freeze and shield refused", async () => {
    reset(late);
    const url = '/system/late-watcher';
    expect((await t.app.inject({ method: 'GET', url })).statusCode).toBe(401);
    const unrelated = await t.keyWith(['flags:read']);
    expect((await t.inject({ method: 'GET', url, headers: authHeader(unrelated.token) })).statusCode).toBe(403);
    const limited = await t.keyWith(['system:read'], { rateLimit: { max: 1, windowSeconds: 600 } });
    expect((await t.inject({ method: 'GET', url, headers: authHeader(limited.token) })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url, headers: authHeader(limited.token) })).statusCode).toBe(429);

    await t.inject({ method: 'POST', url: '/system/maintenance/freeze', payload: { enabled: true, reason: 'guide test' } });
    const frozen = await t.inject({ method: 'POST', url });
    await t.inject({ method: 'POST', url: '/system/maintenance/freeze', payload: { enabled: false, reason: 'done' } });
    expect(frozen.statusCode).toBe(423);

    await t.inject({ method: 'POST', url: '/system/maintenance/state', payload: { mode: 'read_only', reason: 'guide test' } });
    const shielded = await t.inject({ method: 'POST', url });
    await t.inject({ method: 'POST', url: '/system/maintenance/state', payload: { mode: 'normal', reason: 'done' } });
    expect(shielded.statusCode).toBe(503);

    // Only the one request that got through reached the pack's request hooks, with a caller set...
    expect({ root: late.rootHook, scope: late.scopeHook, route: late.routeHook }).toEqual({ root: 1, scope: 1, route: 1 });
    expect(late.callerSeen).toEqual([true]);
    // ...while its onResponse hook saw every answer.
    expect(late.responses).toEqual([401, 403, 200, 429, 423, 503]);
  });

  it("a pack listed before api-keys: its scope hook runs before authentication, its route's own onRequest after", async () => {
    const early = newSeen();
    const app: FastifyInstance = await t.another(undefined, { packs: [watcherPack('early-watcher', early), ...allPacks] });
    expect((await app.inject({ method: 'GET', url: '/system/early-watcher' })).statusCode).toBe(401);
    expect({ root: early.rootHook, scope: early.scopeHook, route: early.routeHook }).toEqual({ root: 1, scope: 1, route: 0 });
    expect(early.callerSeen).toEqual([false]);
  });
});

describe('HEAD twins (docs/packs.md, section 4)', () => {
  it('every GET has a HEAD twin with the same scope, in the catalogue and the route index, guarded like the GET', async () => {
    const gets = t.app.routeCatalog.filter((r) => r.method === 'GET');
    for (const g of gets) {
      const twin = t.app.routeCatalog.find((r) => r.method === 'HEAD' && r.url === g.url);
      expect(twin, `HEAD ${g.url}`).toBeDefined();
      expect(twin!.scope).toBe(g.scope);
    }
    const index = await t.inject({ method: 'GET', url: '/system/routes?method=HEAD&prefix=/system/late-watcher' });
    expect(index.json().items).toMatchObject([{ method: 'HEAD', url: '/system/late-watcher', scope: 'system:read' }]);
    expect((await t.app.inject({ method: 'HEAD', url: '/system/late-watcher' })).statusCode).toBe(401);
    const doc = (await t.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
    expect(Object.keys(doc.paths['/system/flags']!)).not.toContain('head');
  });
});

describe('perInstance periodic jobs (docs/packs.md, section 6)', () => {
  it('run on every instance, on its own clock, without a job_schedules row; shared ones on one instance', async () => {
    const seen = newSeen();
    const pack = watcherPack('job-watcher', seen);
    const one = await t.another(undefined, { extraPacks: [pack] });
    const two = await t.another(undefined, { extraPacks: [pack] });
    const ranOne = await one.jobs.runDuePeriodic();
    const ranTwo = await two.jobs.runDuePeriodic();
    expect(ranOne).toContain('job-watcher:per-instance');
    expect(ranTwo).toContain('job-watcher:per-instance');
    expect(seen.perInstanceRuns).toBe(2);
    expect(seen.sharedRuns).toBe(1);
    expect(await one.jobs.runDuePeriodic()).not.toContain('job-watcher:per-instance'); // not before intervalMs
    const rows = await t.app.db.select({ name: jobSchedules.name }).from(jobSchedules).where(eq(jobSchedules.name, 'job-watcher:per-instance'));
    expect(rows).toEqual([]);
    expect(await t.app.db.select({ name: jobSchedules.name }).from(jobSchedules).where(eq(jobSchedules.name, 'job-watcher:shared'))).toHaveLength(1);
  });
});

describe('metrics (docs/packs.md, section 7a)', () => {
  it("adds no instance label of its own, names the instance in build_info, and calls a gauge's collect() on each scrape", async () => {
    reset(late);
    const first = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    const second = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(first).toMatch(/^valhalla_late_watcher_collected 1$/m);
    expect(second).toMatch(/^valhalla_late_watcher_collected 2$/m);
    const samples = second.split('\n').filter((l) => l.startsWith('valhalla_'));
    expect(samples.length).toBeGreaterThan(5);
    for (const line of samples) expect(line, line).not.toMatch(/[{,]instance="/);
    expect(second).toContain(`instance_id="${t.app.lifecycle.instanceId}"`);
  });
});
