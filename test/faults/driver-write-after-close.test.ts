import { describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';
import { serverUrl } from '../helpers/database.js';
import { useProxiedDriver } from '../helpers/proxied-driver.js';

/**
 * Regression tests for two defects of postgres.js 3.4.9 (patched in patches/postgres+3.4.9.patch,
 * applied by patch-package on every install):
 * - a small write is flushed from a `setImmediate`; when the socket closed in between, the flush
 *   threw `TypeError: Cannot read properties of null (reading 'write')` where no caller could
 *   catch it, and the process exited (porsager/postgres#1154, #1208);
 * - teardown cleared that timer without forgetting it, so the connection never flushed a write
 *   again and its next query hung.
 * Vitest fails a file on an uncaught exception, so on the unpatched driver these fail.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!serverUrl())('postgres.js: a write after the connection was cut', { timeout: 10_000 }, () => {
  const driver = useProxiedDriver();
  const open = () => driver.client({ max: 2, connect_timeout: 2, backoff: () => 0.05 });

  it('rejects a small query on a reserved connection whose socket died, and the process lives', async () => {
    const sql = open();
    const reserved = await sql.reserve();
    await reserved`select 1`;
    driver.proxy.cut();
    await sleep(100); // the reset reaches the driver: its socket is closed and dropped
    await expect(reserved`select 2`).rejects.toMatchObject({ code: expect.stringMatching(/^CONNECTION_/) });
    reserved.release();
    await sleep(50); // an unpatched driver throws from setImmediate here
    driver.proxy.restore();
    await expect(sql`select 3 as n`).resolves.toEqual([{ n: 3 }]);
  });

  it('rejects the rest of a transaction cut in the middle, commits nothing, and recovers', async () => {
    const sql = open();
    await sql`create table if not exists cut_tx (n int)`;
    const tx = sql.begin(async (t) => {
      await t`insert into cut_tx values (1)`;
      driver.proxy.cut();
      await sleep(100);
      await t`insert into cut_tx values (2)`;
    });
    await expect(tx).rejects.toMatchObject({ code: expect.stringMatching(/^CONNECTION_|ECONNRESET/) });
    await sleep(50);
    driver.proxy.restore();
    await expect(sql`select count(*)::int as n from cut_tx`).resolves.toEqual([{ n: 0 }]);
  });

  it('a pooled connection cut with a write buffered flushes again after reconnecting', async () => {
    const sql = open();
    await sql`select 1`;
    // Buffer a small write, then cut before its setImmediate flush runs.
    const pending = sql`select pg_sleep(0.01), 'x' as v`;
    const settled = pending.then(() => 'ok', () => 'failed');
    driver.proxy.cut();
    expect(['ok', 'failed']).toContain(await settled);
    driver.proxy.restore();
    for (let i = 0; i < 5; i++) {
      await expect(Promise.race([sql`select ${i}::int as n`, sleep(3000).then(() => 'hung')])).resolves.toEqual([{ n: i }]);
    }
  });

  it('survives the advisory-lock helper losing its reserved connection (db/client.ts)', async () => {
    const db: Database = await createDatabase({ url: driver.url, max: 2 });
    try {
      const outcome = db.withAdvisoryLock(42n, async () => {
        driver.proxy.cut();
        await sleep(100);
        return 'ran';
      });
      // The unlock on the dead reserved connection fails quietly; the body's result stands.
      await expect(outcome).resolves.toBe('ran');
      await sleep(50);
      driver.proxy.restore();
      await expect(db.withAdvisoryLock(42n, async () => 'again')).resolves.toBe('again');
    } finally {
      await db.close().catch(() => {});
    }
  });
});
