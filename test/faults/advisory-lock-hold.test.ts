import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, DatabaseTimeoutError, type Database } from '../../db/client.js';
import { createTestDatabase, serverUrl, type TestDatabase } from '../helpers/database.js';

/**
 * A readiness ping or heartbeat that times out makes the pool drop its idle connections (a
 * partition most likely froze them too: db/client.ts, `dropIdle`). The session holding a session
 * advisory lock (`withAdvisoryLock`: periodic jobs, retention purges) is idle while its holder
 * works through the pool; dropping it on that suspicion released the lock on the server while the
 * holder went on, so another instance could take the same lock. It is now left open.
 */
describe.skipIf(!serverUrl())('the session holding an advisory lock', () => {
  let database: TestDatabase;
  let db: Database;
  let direct: postgres.Sql;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await createDatabase({ url: database.url!, max: 2 });
    direct = postgres(database.url!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await direct?.end();
    await db?.close();
    await database?.drop();
  });

  it('is not dropped when a timed-out ping makes the pool drop its idle connections', async () => {
    const key = 4242n;
    const takenElsewhere = await db.withAdvisoryLock(key, async () => {
      // The pool's other connection is busy, so the ping waits behind it and times out.
      const busy = db.db.execute(sql`select pg_sleep(1)`).then(() => undefined);
      await new Promise((r) => setTimeout(r, 200)); // it runs on the pool's other connection
      await expect(db.ping(50)).rejects.toBeInstanceOf(DatabaseTimeoutError);
      await busy;
      const [row] = await direct<{ locked: boolean }[]>`select pg_try_advisory_lock(${key.toString()}::bigint) as locked`;
      if (row!.locked) await direct`select pg_advisory_unlock(${key.toString()}::bigint)`;
      return row!.locked;
    });
    expect(takenElsewhere).toBe(false);
    // Released at the end, as always: another session takes it now.
    const [after] = await direct<{ locked: boolean }[]>`select pg_try_advisory_lock(${key.toString()}::bigint) as locked`;
    expect(after!.locked).toBe(true);
    await direct`select pg_advisory_unlock(${key.toString()}::bigint)`;
  });
});
