import { desc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DbOrTx } from '../../db/client.js';
import { adminOperations } from '../../src/audit/table.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { FIXTURE, shieldFixturePack } from '../read-only-shield/test-routes.js';
import type { MaintenanceChange } from './index.js';
import { maintenanceWindows } from './table.js';

const PATH = '/system/maintenance';
const WINDOWS = `${PATH}/windows`;

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { extraPacks: [shieldFixturePack] });
});
afterAll(async () => t?.close());

const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toISOString();
const setState = (payload: Record<string, unknown>) => t.inject({ method: 'POST', url: `${PATH}/state`, payload });
const setFreeze = (payload: Record<string, unknown>) => t.inject({ method: 'POST', url: `${PATH}/freeze`, payload });
const createWindow = (payload: Record<string, unknown>) => t.inject({ method: 'POST', url: WINDOWS, payload });
const status = async () => (await t.inject({ method: 'GET', url: PATH })).json();
const lastAudit = async (operation: string) =>
  (await t.app.db.select().from(adminOperations).where(eq(adminOperations.operation, operation)).orderBy(desc(adminOperations.id)).limit(1))[0];

/** Back to normal, no freeze, no windows: straight through the service (maintenance mode refuses callers without admin). */
async function reset() {
  const m = t.app.maintenance;
  const actor = { type: 'system', id: 'test', keyId: null };
  await t.app.db.transaction(async (tx) => {
    await m.service.insertSetting(tx, { mode: 'normal', reason: 'test reset', source: 'manual', actor, since: new Date(), until: null });
    await m.service.insertFreeze(tx, { enabled: false, reason: 'test reset', source: 'manual', actor, since: new Date(), until: null });
    await tx.delete(maintenanceWindows);
  });
  await m.entry.reload();
}
beforeEach(reset);

describe('maintenance mode (UE)', () => {
  it('reports the mode, the effective mode, windows and the freeze', async () => {
    const res = await t.inject({ method: 'GET', url: PATH });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      mode: 'normal',
      reason: 'test reset',
      effective: { mode: 'normal' },
      activeWindow: null,
      nextWindow: null,
      freeze: { enabled: false },
    });
  });

  it('sets the mode with a reason and an until, keeps the history and audits it', async () => {
    const until = inSeconds(3600);
    const res = await setState({ mode: 'read_only', reason: 'database upgrade', until });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ mode: 'read_only', reason: 'database upgrade', source: 'manual', until, effective: { mode: 'read_only', source: 'setting', until } });
    expect(Date.parse(res.json().since)).toBeLessThanOrEqual(Date.now());
    expect(t.app.maintenance.current().effective.mode).toBe('read_only');

    const audit = await lastAudit('maintenance.state.change');
    expect(audit).toMatchObject({ reason: 'database upgrade', targetType: 'maintenance', targetId: 'mode', correlationId: res.headers['x-request-id'] });
    expect(audit?.before).toMatchObject({ mode: 'normal' });
    expect(audit?.after).toMatchObject({ mode: 'read_only', until });

    expect((await setState({ mode: 'normal', reason: 'done' })).json()).toMatchObject({ mode: 'normal', until: null, effective: { mode: 'normal' } });
    const history = (await t.inject({ method: 'GET', url: `${PATH}/history?limit=2` })).json();
    expect(history.items.map((h: { mode: string; reason: string }) => [h.mode, h.reason])).toEqual([
      ['normal', 'done'],
      ['read_only', 'database upgrade'],
    ]);
    expect(history.nextCursor).toEqual(expect.any(String));
    const next = (await t.inject({ method: 'GET', url: `${PATH}/history?limit=2&cursor=${history.nextCursor}` })).json();
    expect(next.items[0].id).toBeLessThan(history.items[1].id);
  });

  it('refuses bad mode changes with 4xx problems', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ mode: 'read_only' }, '#/reason'],
      [{ mode: 'readonly', reason: 'x' }, '#/mode'],
      [{ mode: 'read_only', reason: '' }, '#/reason'],
      [{ mode: 'read_only', reason: 'r'.repeat(501) }, '#/reason'],
      [{ mode: 'read_only', reason: 'x', colour: 'red' }, '#/colour'],
      [{ mode: 'read_only', reason: 'x', until: 'tomorrow' }, '#/until'],
      [{ mode: 'read_only', reason: 'x', until: inSeconds(-60) }, '#/until'],
      [{ mode: 'normal', reason: 'x', until: inSeconds(60) }, '#/until'],
    ];
    for (const [payload, pointer] of cases) {
      const res = await setState(payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().errors, JSON.stringify(payload)).toContainEqual(expect.objectContaining({ pointer }));
    }
    const text = await t.inject({ method: 'POST', url: `${PATH}/state`, payload: 'mode=read_only', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(415);
    expect((await t.inject({ method: 'GET', url: `${PATH}/history?cursor=bogus` })).json().type).toBe('/problems/invalid-cursor');
    expect((await t.inject({ method: 'GET', url: `${PATH}/history?limit=0` })).statusCode).toBe(400);
    expect((await status()).mode).toBe('normal');
  });

  it('switches back to normal by itself when until passes, then the sweep persists it once', async () => {
    expect((await setState({ mode: 'read_only', reason: 'short', until: inSeconds(1) })).statusCode).toBe(200);
    expect(t.app.maintenance.current().effective.mode).toBe('read_only');
    // In memory, without any job or reload: the view changes at the until.
    await vi.waitFor(() => expect(t.app.maintenance.current().effective.mode).toBe('normal'), { timeout: 3000, interval: 50 });
    expect(await status()).toMatchObject({ mode: 'normal', source: 'expired', effective: { mode: 'normal' } });

    // The periodic job (one instance at a time) runs the sweep; a second sweep finds nothing to do.
    expect(await t.app.jobs.runDuePeriodic()).toContain('maintenance:sweep');
    expect((await t.app.maintenance.sweep()).modeExpired).toBe(false);
    const history = (await t.inject({ method: 'GET', url: `${PATH}/history?limit=1` })).json();
    expect(history.items[0]).toMatchObject({ mode: 'normal', source: 'expired', actor: { type: 'system' } });
    const audit = await lastAudit('maintenance.state.expire');
    expect(audit).toMatchObject({ actorType: 'system', reason: 'until passed' });
    expect(audit?.before).toMatchObject({ mode: 'read_only', reason: 'short' });
  });

  it('tells change listeners once, inside the transaction of the change', async () => {
    const seen: Array<{ change: MaintenanceChange; tx: DbOrTx }> = [];
    let listening = true;
    t.app.maintenance.onChange((change, tx) => {
      if (listening) seen.push({ change, tx });
    });
    try {
      await setState({ mode: 'maintenance', reason: 'listener', until: inSeconds(1) });
      expect(seen).toHaveLength(1);
      expect(seen[0]?.change).toMatchObject({ kind: 'mode', cause: 'manual', windowId: null, view: { effective: { mode: 'maintenance' } } });
      expect(seen[0]?.tx).not.toBe(t.app.db);

      await vi.waitFor(() => expect(t.app.maintenance.current().effective.mode).toBe('normal'), { timeout: 3000, interval: 50 });
      await t.app.maintenance.sweep();
      expect(seen.map((s) => s.change.cause)).toEqual(['manual', 'until-expired']);
      expect(seen[1]?.change.view.effective.mode).toBe('normal');
    } finally {
      listening = false;
    }
  });

  it('exposes the mode as a gauge and in the admin overview', async () => {
    await setState({ mode: 'read_only', reason: 'metrics', until: inSeconds(600) });
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/valhalla_maintenance_mode\{mode="read_only"[^}]*\} 1/);
    expect(metrics).toMatch(/valhalla_maintenance_mode\{mode="normal"[^}]*\} 0/);
    expect(metrics).toMatch(/^valhalla_maintenance_freeze 0$/m);
    const overview = await t.app.overview.read();
    expect(overview.maintenance).toMatchObject({ mode: 'read_only', source: 'setting', freeze: false });
  });
});

describe('scheduled windows', () => {
  it('creates, reads, lists, changes and deletes windows, each audited', async () => {
    const startsAt = inSeconds(3600);
    const endsAt = inSeconds(7200);
    const res = await createWindow({ mode: 'maintenance', reason: 'kernel upgrade', startsAt, endsAt });
    expect(res.statusCode).toBe(201);
    const w = res.json();
    expect(w).toMatchObject({ mode: 'maintenance', reason: 'kernel upgrade', startsAt, endsAt, status: 'upcoming', activatedAt: null, completedAt: null });
    expect(res.headers.location).toBe(`${WINDOWS}/${w.id}`);
    expect((await status()).nextWindow).toMatchObject({ id: w.id });

    expect((await t.inject({ method: 'GET', url: `${WINDOWS}/${w.id}` })).json()).toEqual(w);
    const patched = await t.inject({ method: 'PATCH', url: `${WINDOWS}/${w.id}`, payload: { mode: 'read_only', reason: 'smaller upgrade' } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ id: w.id, mode: 'read_only', reason: 'smaller upgrade', startsAt, endsAt });

    const second = (await createWindow({ mode: 'read_only', reason: 'second', startsAt: inSeconds(8000), endsAt: inSeconds(9000) })).json();
    const page1 = (await t.inject({ method: 'GET', url: `${WINDOWS}?limit=1` })).json();
    expect(page1.items.map((i: { id: number }) => i.id)).toEqual([w.id]);
    const page2 = (await t.inject({ method: 'GET', url: `${WINDOWS}?limit=1&cursor=${page1.nextCursor}` })).json();
    expect(page2).toMatchObject({ items: [{ id: second.id }], nextCursor: null });
    expect((await t.inject({ method: 'GET', url: `${WINDOWS}?status=active` })).json().items).toEqual([]);
    expect((await t.inject({ method: 'GET', url: `${WINDOWS}?status=upcoming` })).json().items).toHaveLength(2);

    expect((await t.inject({ method: 'DELETE', url: `${WINDOWS}/${w.id}` })).statusCode).toBe(204);
    expect((await t.inject({ method: 'GET', url: `${WINDOWS}/${w.id}` })).statusCode).toBe(404);

    const ops = await t.app.db.select().from(adminOperations).where(eq(adminOperations.targetId, String(w.id))).orderBy(adminOperations.id);
    expect(ops.filter((o) => o.targetType === 'maintenance-window').map((o) => o.operation)).toEqual([
      'maintenance.window.create',
      'maintenance.window.update',
      'maintenance.window.delete',
    ]);
  });

  it('refuses bad windows: 400 for bad input, 404 for unknown ids, 409 for overlaps and ended windows', async () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ mode: 'normal', reason: 'x', startsAt: inSeconds(10), endsAt: inSeconds(20) }, '#/mode'],
      [{ mode: 'maintenance', reason: 'x', startsAt: inSeconds(20), endsAt: inSeconds(10) }, '#/endsAt'],
      [{ mode: 'maintenance', reason: 'x', startsAt: inSeconds(10), endsAt: inSeconds(10) }, '#/endsAt'],
      [{ mode: 'maintenance', reason: 'x', startsAt: inSeconds(-20), endsAt: inSeconds(-10) }, '#/endsAt'],
      [{ mode: 'maintenance', reason: 'x', startsAt: 'soon', endsAt: inSeconds(10) }, '#/startsAt'],
      [{ mode: 'maintenance', startsAt: inSeconds(10), endsAt: inSeconds(20) }, '#/reason'],
      [{ mode: 'maintenance', reason: 'x', startsAt: inSeconds(10), endsAt: inSeconds(20), id: 3 }, '#/id'],
    ];
    for (const [payload, pointer] of bad) {
      const res = await createWindow(payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().errors, JSON.stringify(payload)).toContainEqual(expect.objectContaining({ pointer }));
    }

    const w = (await createWindow({ mode: 'maintenance', reason: 'first', startsAt: inSeconds(100), endsAt: inSeconds(200) })).json();
    const overlap = await createWindow({ mode: 'read_only', reason: 'clash', startsAt: inSeconds(150), endsAt: inSeconds(250) });
    expect(overlap.statusCode).toBe(409);
    expect(overlap.json()).toMatchObject({ type: '/problems/conflict', conflictingWindowId: w.id });
    const other = (await createWindow({ mode: 'read_only', reason: 'after', startsAt: inSeconds(200), endsAt: inSeconds(300) })).json();
    expect((await t.inject({ method: 'PATCH', url: `${WINDOWS}/${other.id}`, payload: { startsAt: inSeconds(150) } })).statusCode).toBe(409);
    expect((await t.inject({ method: 'PATCH', url: `${WINDOWS}/${w.id}`, payload: { endsAt: inSeconds(50) } })).json().errors).toContainEqual(
      expect.objectContaining({ pointer: '#/endsAt' }),
    );

    for (const [method, payload] of [['GET'], ['PATCH', { reason: 'x' }], ['DELETE']] as const) {
      expect((await t.inject({ method, url: `${WINDOWS}/999999`, payload })).statusCode, method).toBe(404);
      expect((await t.inject({ method, url: `${WINDOWS}/abc`, payload })).statusCode, method).toBe(400);
      expect((await t.inject({ method, url: `${WINDOWS}/0`, payload })).statusCode, method).toBe(400);
    }
    expect((await t.inject({ method: 'PATCH', url: `${WINDOWS}/${w.id}`, payload: {} })).statusCode).toBe(400);
    expect((await t.inject({ method: 'PATCH', url: `${WINDOWS}/${w.id}`, payload: { mode: 'normal' } })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${WINDOWS}?status=finished` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${WINDOWS}?limit=501` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${WINDOWS}?cursor=bogus` })).json().type).toBe('/problems/invalid-cursor');

    // An ended window is history: it cannot be changed (written through the service with a past clock).
    const ended = await t.app.db.transaction((tx) =>
      t.app.maintenance.service.createWindow(tx, { mode: 'read_only', reason: 'past', startsAt: inSeconds(-7200), endsAt: inSeconds(-3600) }, null, Date.now() - 10 * 3600_000),
    );
    const late = await t.inject({ method: 'PATCH', url: `${WINDOWS}/${ended.id}`, payload: { reason: 'rewrite history' } });
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({ currentState: 'ended' });
  });

  it('switches the mode at the window start and back at its end, and the sweep records both', async () => {
    const seen: MaintenanceChange[] = [];
    let listening = true;
    t.app.maintenance.onChange((c) => {
      if (listening) seen.push(c);
    });
    try {
      const w = (await createWindow({ mode: 'read_only', reason: 'window test', startsAt: inSeconds(1), endsAt: inSeconds(3) })).json();
      expect((await status()).effective.mode).toBe('normal');
      await vi.waitFor(async () => expect((await status()).effective).toMatchObject({ mode: 'read_only', source: 'window', windowId: w.id }), { timeout: 3000, interval: 50 });
      expect((await status()).activeWindow).toMatchObject({ id: w.id, status: 'active' });

      expect((await t.app.maintenance.sweep()).activated).toEqual([w.id]);
      expect((await t.inject({ method: 'GET', url: `${WINDOWS}/${w.id}` })).json().activatedAt).toEqual(expect.any(String));

      await vi.waitFor(async () => expect((await status()).effective.mode).toBe('normal'), { timeout: 4000, interval: 50 });
      expect((await t.app.maintenance.sweep()).completed).toEqual([w.id]);
      expect(await t.app.maintenance.sweep()).toEqual({ modeExpired: false, freezeExpired: false, activated: [], completed: [] });
      expect(seen.map((c) => [c.cause, c.windowId])).toEqual([
        ['window-start', w.id],
        ['window-end', w.id],
      ]);
      expect((await lastAudit('maintenance.window.complete'))?.targetId).toBe(String(w.id));
    } finally {
      listening = false;
    }
  });

  it('lets the operator end a window early by setting the mode during it', async () => {
    const w = (await createWindow({ mode: 'maintenance', reason: 'long', startsAt: inSeconds(-1), endsAt: inSeconds(3600) })).json();
    expect(t.app.maintenance.current().effective).toMatchObject({ mode: 'maintenance', windowId: w.id });
    // In maintenance mode only admin or maintenance:write callers reach this endpoint; written
    // through the service here so the test does not depend on the authentication pack.
    await t.app.db.transaction((tx) =>
      t.app.maintenance.service.insertSetting(tx, { mode: 'normal', reason: 'ended early', source: 'manual', actor: { type: 'client', id: '1', keyId: null }, since: new Date(), until: null }),
    );
    await t.app.maintenance.entry.reload();
    expect(t.app.maintenance.current().effective).toMatchObject({ mode: 'normal', source: 'setting' });
  });
});

describe('change freeze', () => {
  it('switches on with a reason and until, audited, and refuses frozen writes with 423', async () => {
    const until = inSeconds(3600);
    const res = await setFreeze({ enabled: true, reason: 'release week', until });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ enabled: true, reason: 'release week', until, source: 'manual' });
    expect((await t.inject({ method: 'GET', url: `${PATH}/freeze` })).json()).toEqual(res.json());
    expect((await status()).freeze).toEqual(res.json());
    expect(await lastAudit('maintenance.freeze.change')).toMatchObject({ reason: 'release week', targetId: 'freeze' });

    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      const frozen = await t.inject({ method, url: `${FIXTURE}/items`, payload: {} });
      expect(frozen.statusCode, method).toBe(423);
      expect(frozen.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(frozen.json()).toMatchObject({ type: '/problems/locked', freezeUntil: until });
      expect(frozen.json().detail).toContain('release week');
    }
    expect((await t.inject({ method: 'GET', url: `${FIXTURE}/items` })).statusCode).toBe(200);
    expect((await t.inject({ method: 'POST', url: `${FIXTURE}/plain`, payload: {} })).statusCode).toBe(200);
    // The freeze does not depend on the shield: an opted-out route is still frozen.
    expect((await t.inject({ method: 'POST', url: `${FIXTURE}/open`, payload: {} })).statusCode).toBe(423);
    // The maintenance endpoints themselves are never frozen.
    expect((await setFreeze({ enabled: false, reason: 'release shipped' })).json()).toMatchObject({ enabled: false, until: null });
    expect((await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {} })).statusCode).toBe(200);
  });

  it('ends by itself at its until; the sweep persists the end once', async () => {
    await setFreeze({ enabled: true, reason: 'short freeze', until: inSeconds(1) });
    expect((await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {} })).statusCode).toBe(423);
    await vi.waitFor(async () => expect((await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {} })).statusCode).toBe(200), { timeout: 3000, interval: 50 });
    expect((await t.inject({ method: 'GET', url: `${PATH}/freeze` })).json()).toMatchObject({ enabled: false, source: 'expired' });
    expect((await t.app.maintenance.sweep()).freezeExpired).toBe(true);
    expect((await t.app.maintenance.sweep()).freezeExpired).toBe(false);
    expect(await lastAudit('maintenance.freeze.expire')).toMatchObject({ actorType: 'system' });
  });

  it('refuses bad freeze changes with 400', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ enabled: true }, '#/reason'],
      [{ enabled: 'yes', reason: 'x' }, '#/enabled'],
      [{ enabled: true, reason: 'x', until: inSeconds(-5) }, '#/until'],
      [{ enabled: false, reason: 'x', until: inSeconds(60) }, '#/until'],
      [{ enabled: true, reason: 'x', scope: 'all' }, '#/scope'],
    ];
    for (const [payload, pointer] of cases) {
      const res = await setFreeze(payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().errors, JSON.stringify(payload)).toContainEqual(expect.objectContaining({ pointer }));
    }
    expect((await t.inject({ method: 'GET', url: `${PATH}/freeze` })).json().enabled).toBe(false);
  });
});

describe('documentation', () => {
  it('documents every maintenance route with a scope', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths[PATH])).toEqual(['get']);
    expect(Object.keys(doc.paths[WINDOWS])).toEqual(expect.arrayContaining(['get', 'post']));
    expect(Object.keys(doc.paths[`${WINDOWS}/{id}`])).toEqual(expect.arrayContaining(['get', 'patch', 'delete']));
    const ours = t.app.routeCatalog.filter((r) => r.pack === 'maintenance');
    expect(ours.length).toBeGreaterThanOrEqual(10);
    for (const r of ours) expect(r.scope, `${r.method} ${r.url}`).toMatch(/^maintenance:(read|write)$/);
  });
});

describe('freeze override and access (with API keys)', () => {
  const OVERRIDE = 'x-freeze-override';
  let readKey: string;
  let writeKey: string;
  beforeAll(async () => {
    readKey = (await t.keyWith(['maintenance:read'])).token;
    writeKey = (await t.keyWith(['maintenance:write', 'system:write'])).token;
  });

  it('lets an admin pass the freeze with a reason in x-freeze-override, and audits it', async () => {
    // Nothing so far sent the header: no request may have left an override entry.
    expect(await lastAudit('freeze.override')).toBeUndefined();
    await setFreeze({ enabled: true, reason: 'override test' });
    const res = await t.inject({ method: 'PATCH', url: `${FIXTURE}/items`, payload: {}, headers: { [OVERRIDE]: 'hotfix for incident 42' } });
    expect(res.statusCode).toBe(200);
    const audit = await lastAudit('freeze.override');
    expect(audit).toMatchObject({ reason: 'hotfix for incident 42', targetType: 'route', targetId: `PATCH ${FIXTURE}/items`, correlationId: res.headers['x-request-id'], actorType: 'client' });

    const short = await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {}, headers: { [OVERRIDE]: 'ab' } });
    expect(short.statusCode).toBe(400);
    expect(short.json().errors).toContainEqual(expect.objectContaining({ in: 'headers', pointer: `#/${OVERRIDE}` }));
    const long = await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {}, headers: { [OVERRIDE]: 'x'.repeat(501) } });
    expect(long.statusCode).toBe(400);
    expect((await lastAudit('freeze.override'))?.id).toBe(audit?.id);
  });

  it('refuses the override to a caller without admin with 403, and without the header with 423', async () => {
    await setFreeze({ enabled: true, reason: 'override test' });
    const headers = { authorization: `Bearer ${writeKey}` };
    const noAdmin = await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {}, headers: { ...headers, [OVERRIDE]: 'i really need this' } });
    expect(noAdmin.statusCode).toBe(403);
    expect(noAdmin.json().type).toBe('/problems/forbidden');
    expect((await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {}, headers })).statusCode).toBe(423);
    // Without the freeze the header changes nothing and records nothing.
    await setFreeze({ enabled: false, reason: 'thaw' });
    const before = await lastAudit('freeze.override');
    expect((await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {}, headers: { [OVERRIDE]: 'not needed now' } })).statusCode).toBe(200);
    expect((await lastAudit('freeze.override'))?.id).toBe(before?.id);
  });

  it('answers 401 without a key and 403 to a maintenance:read key on every write', async () => {
    expect((await t.app.inject({ method: 'GET', url: PATH })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'POST', url: `${PATH}/state`, payload: { mode: 'normal', reason: 'x' } })).statusCode).toBe(401);
    const headers = { authorization: `Bearer ${readKey}` };
    for (const url of [PATH, `${PATH}/history`, `${PATH}/freeze`, WINDOWS]) {
      expect((await t.inject({ method: 'GET', url, headers })).statusCode, url).toBe(200);
    }
    const w = (await createWindow({ mode: 'read_only', reason: 'scoped', startsAt: inSeconds(600), endsAt: inSeconds(700) })).json();
    const writes: Array<[InjectMethod, string, Record<string, unknown>?]> = [
      ['POST', `${PATH}/state`, { mode: 'read_only', reason: 'x' }],
      ['POST', `${PATH}/freeze`, { enabled: true, reason: 'x' }],
      ['POST', WINDOWS, { mode: 'read_only', reason: 'x', startsAt: inSeconds(800), endsAt: inSeconds(900) }],
      ['PATCH', `${WINDOWS}/${w.id}`, { reason: 'x' }],
      ['DELETE', `${WINDOWS}/${w.id}`],
    ];
    for (const [method, url, payload] of writes) {
      const res = await t.inject({ method, url, payload, headers });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.json().type).toBe('/problems/forbidden');
    }
    expect((await status()).mode).toBe('normal');
  });
});

type InjectMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';
