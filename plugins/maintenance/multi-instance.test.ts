import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { FIXTURE, shieldFixturePack } from '../read-only-shield/test-routes.js';

const PATH = '/system/maintenance';
const within1s = { timeout: 1000, interval: 20 };

describe.skipIf(!process.env.TEST_DATABASE_URL && !process.env.DATABASE_URL)('maintenance across instances (PostgreSQL)', () => {
  let t: TestApp;
  let other: FastifyInstance;
  beforeAll(async () => {
    t = await createTestApp({}, { extraPacks: [shieldFixturePack] });
    other = await t.another();
  });
  afterAll(async () => t?.close());

  it('a mode change on one instance reaches the other within one second, and its shield with it', async () => {
    const res = await t.inject({ method: 'POST', url: `${PATH}/state`, payload: { mode: 'read_only', reason: 'cross-instance' } });
    expect(res.statusCode).toBe(200);
    await vi.waitFor(() => expect(other.maintenance.current().effective.mode).toBe('read_only'), within1s);
    expect((await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {} }, other)).statusCode).toBe(503);

    const back = await t.inject({ method: 'POST', url: `${PATH}/state`, payload: { mode: 'normal', reason: 'cross-instance over' } }, other);
    expect(back.statusCode).toBe(200);
    await vi.waitFor(() => expect(t.app.maintenance.current().effective.mode).toBe('normal'), within1s);
  });

  it('the freeze switched on one instance refuses frozen writes on the other within one second', async () => {
    expect((await t.inject({ method: 'POST', url: `${PATH}/freeze`, payload: { enabled: true, reason: 'cross-instance freeze' } }, other)).statusCode).toBe(200);
    await vi.waitFor(async () => expect((await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {} })).statusCode).toBe(423), within1s);
    expect((await t.inject({ method: 'POST', url: `${PATH}/freeze`, payload: { enabled: false, reason: 'thaw' } })).statusCode).toBe(200);
    await vi.waitFor(async () => expect((await t.inject({ method: 'POST', url: `${FIXTURE}/items`, payload: {} }, other)).statusCode).toBe(200), within1s);
  });

  it('a window scheduled on one instance is known to the other within one second', async () => {
    const startsAt = new Date(Date.now() + 3600_000).toISOString();
    const endsAt = new Date(Date.now() + 7200_000).toISOString();
    const w = (await t.inject({ method: 'POST', url: `${PATH}/windows`, payload: { mode: 'maintenance', reason: 'shared', startsAt, endsAt } })).json();
    await vi.waitFor(() => expect(other.maintenance.current().nextWindow?.id).toBe(w.id), within1s);
    expect((await t.inject({ method: 'DELETE', url: `${PATH}/windows/${w.id}` }, other)).statusCode).toBe(204);
    await vi.waitFor(() => expect(t.app.maintenance.current().nextWindow).toBeNull(), within1s);
  });

  it('two instances sweeping at once record a passed until once', async () => {
    await t.inject({ method: 'POST', url: `${PATH}/state`, payload: { mode: 'read_only', reason: 'expires soon', until: new Date(Date.now() + 300).toISOString() } });
    await vi.waitFor(() => expect(t.app.maintenance.current().effective.mode).toBe('normal'), { timeout: 3000, interval: 20 });
    const results = await Promise.all([t.app.maintenance.sweep(), other.maintenance.sweep(), t.app.maintenance.sweep()]);
    expect(results.filter((r) => r.modeExpired)).toHaveLength(1);
    const rows = await t.app.db.select().from(adminOperations).where(eq(adminOperations.operation, 'maintenance.state.expire'));
    expect(rows).toHaveLength(1);
  });
});
