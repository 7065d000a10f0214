import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { queryRows } from '../../db/client.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { serverUrl } from '../helpers/database.js';

/**
 * The state cache's LISTEN connection is killed by the server (pg_terminate_backend, as a
 * failover or an idle-connection reaper would). postgres.js re-subscribes on its own, but
 * anything notified while it was gone is lost: the cache must reload every entry after the
 * re-subscribe. The change below is made with no NOTIFY at all, the worst case of a lost
 * notification, and must still be served within about a second, not after the 30 s reload.
 */
describe.skipIf(!serverUrl())('state listener killed by the server', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ STATE_RELOAD_INTERVAL_MS: 600_000 });
  });
  afterAll(async () => t?.close());

  const reason = async (key: string) =>
    (await t.inject({ method: 'GET', url: `/system/flags/${key}/evaluate?subject=u1` })).json<{ reason: string }>().reason;

  it('re-subscribes, reloads all state, and counts it', async () => {
    expect((await t.inject({ method: 'POST', url: '/system/flags', payload: { key: 'gap.flag', type: 'kill-switch', enabled: false } })).statusCode).toBe(201);
    expect(await reason('gap.flag')).toBe('DISABLED');

    const killed = await queryRows<{ ok: boolean }>(
      t.app.db,
      sql`select pg_terminate_backend(pid) as ok from pg_stat_activity where datname = current_database() and query ilike 'listen %'`,
    );
    expect(killed).toEqual([{ ok: true }]);
    // Changed while nobody listens, without a notification.
    await t.app.db.execute(sql`update feature_flags set enabled = true where key = 'gap.flag'`);

    await vi.waitFor(async () => expect(await reason('gap.flag')).not.toBe('DISABLED'), { timeout: 3000, interval: 20 });
    expect(t.app.stateCache.listenerStatus()).toMatchObject({ state: 'listening', resubscribes: 1 });
    const metrics = (await t.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^valhalla_state_listener_resubscribes_total\{[^}]*reason="(driver-reconnect|after-outage|heartbeat-missed)"[^}]*\} 1$/m);
  });
});
