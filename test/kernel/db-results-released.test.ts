import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../db/client.js';
import { createTestDatabase, serverUrl, type TestDatabase } from '../helpers/database.js';

// A full garbage collection on demand, without starting the test process with --expose-gc.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let db: TestDatabase;
beforeAll(async () => {
  if (serverUrl()) db = await createTestDatabase();
});
afterAll(async () => db?.drop());

describe.skipIf(!serverUrl())('statement results on PostgreSQL', () => {
  it('are released as soon as the caller drops them, not held for the acquire deadline', async () => {
    // The deadline timer of every statement (DB_ACQUIRE_TIMEOUT_MS, 2 s by default) once held the
    // statement, and so its result: an export at 100,000 rows/s kept 200,000 rows alive.
    const refs: WeakRef<object>[] = [];
    const lengths: number[] = [];
    // In a frame of its own: a suspended async frame may keep its last local alive.
    const query = async () => {
      const rows = rowsOf<{ g: number }>(await db.database.db.execute(sql`select g, repeat('x', 100) as pad from generate_series(1, 1000) g`));
      lengths.push(rows.length);
      refs.push(new WeakRef(rows));
    };
    for (let i = 0; i < 3; i++) await query();
    // One more statement on the pool: a connection may keep its last query until the next one.
    await db.database.db.execute(sql`select 1`);
    await new Promise((r) => setImmediate(r));
    expect(lengths).toEqual([1000, 1000, 1000]);
    gc();
    // Well inside the 2 s deadline: nothing but the caller held the results.
    expect(refs.map((r) => r.deref() === undefined)).toEqual([true, true, true]);
  });
});
