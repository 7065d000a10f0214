import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, serverUrl, type TestDatabase } from '../helpers/database.js';

/**
 * Regression test for a defect of postgres.js 3.4.9 (patched in patches/postgres+3.4.9.patch):
 * a query that fails after the server sent some of its rows (a statement_timeout, a cancel, an
 * error computing a row) left the connection's row counter where it stopped, and the next query
 * pipelined on that connection resolved, without an error, with that many leading holes
 * (porsager/postgres#1181). `const [row] = await ...` then read `undefined`: a row that exists
 * looked missing, and a state load could iterate holes. On the unpatched driver this fails.
 */
describe.skipIf(!serverUrl())('postgres.js: the query after one that failed mid-stream', () => {
  let database: TestDatabase;
  let sql: postgres.Sql;

  beforeAll(async () => {
    database = await createTestDatabase();
    sql = postgres(database.url!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await sql?.end({ timeout: 1 });
    await database?.drop();
  });

  it('gets its own rows from the first index, with no holes', async () => {
    // Rows 1-3 are sent, row 4 divides by zero; the second query is pipelined behind it on the one connection.
    const failing = sql`select i, 1 / (4 - i) as boom from generate_series(1, 10) i`.then(
      () => 'resolved',
      (err: { code?: string }) => err.code,
    );
    const next = sql`select x from generate_series(1, 5) x`;
    expect(await failing).toBe('22012');
    const rows = await next;
    expect(rows.length).toBe(5);
    expect(Object.keys(rows)).toEqual(['0', '1', '2', '3', '4']);
    expect(rows[0]).toEqual({ x: 1 });
  });

  it('also after a statement_timeout that fires while rows stream', async () => {
    // The server-side timeout, as DB_STATEMENT_TIMEOUT_MS sets it, firing after the first rows were sent.
    await sql`set statement_timeout = 300`;
    const failing = sql`select i, case when i > 2 then pg_sleep(1) end from generate_series(1, 5) i`.then(
      () => 'resolved',
      (err: { code?: string }) => err.code,
    );
    const [first] = await sql`select 42 as answer`;
    expect(await failing).toBe('57014');
    expect(first).toEqual({ answer: 42 });
    await sql`reset statement_timeout`;
  });
});
