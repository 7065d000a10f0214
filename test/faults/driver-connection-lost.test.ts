import net from 'node:net';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { serverUrl } from '../helpers/database.js';
import { useProxiedDriver } from '../helpers/proxied-driver.js';

/**
 * Regression tests for defects of postgres.js 3.4.9 (patched in patches/postgres+3.4.9.patch) in
 * which a query ends up on a session that is not its own, or resolves with another's result.
 *
 * 1. A transaction (`sql.begin`) sends its statements straight to the connection it started on,
 * without asking whether that connection is still its own. When the connection drops in the
 * middle of the transaction, the pool reopens it for the next queued query, and a statement the
 * transaction body sends after that:
 * - runs outside any transaction, on the reopened session, and commits by itself (a write the
 *   caller was told failed is stored), when the connection is open again;
 * - resolves with an empty result at the new session's start-up, when the connection is still
 *   opening, and every later query on that connection gets the previous query's rows.
 * Patched: such a statement is refused with CONNECTION_CLOSED (porsager/postgres#1216, #1155).
 *
 * 2. A connection kept what its closed session held. The first query of the next session failed
 * with the error that ended the old one (FATAL 57P01 after a restart or a terminated backend);
 * and a query handed to the connection between its socket's error and its close (the close comes
 * later, asynchronously) was never settled, until the next session's start-up resolved it with an
 * empty result.
 *
 * 3. A BEGIN that filled the pipeline (or was written under back-pressure) did not reserve its
 * connection, which went back to the pool inside the transaction (porsager/postgres#1189).
 *
 * 4. A statement sent after the transaction's ROLLBACK (or COMMIT) was on its way ran behind it in
 * autocommit; patched, it is refused with TRANSACTION_ENDED. A statement waiting in the
 * transaction's own queue when the connection closed never settled (porsager/postgres#1186).
 *
 * The empty results of 1 and 2 happen when a link is cut under load: an instance in
 * test/faults/outage-two-instances.test.ts once loaded `select * from api_clients` as no rows
 * and refused every API key until its next state reload. On the unpatched driver these fail.
 */
describe.skipIf(!serverUrl())('postgres.js: queries around a lost connection', { timeout: 10_000 }, () => {
  const driver = useProxiedDriver(async (directUrl) => {
    const direct = postgres(directUrl, { max: 1, onnotice: () => {} });
    await direct`create table late_tx (n int)`;
    await direct.end();
  });
  const client = driver.client;

  /**
   * One connection; a transaction that waits on `gate` (holding no statement in flight) and then
   * inserts `n`; the link is reset while it waits, and `queued` is waiting for the connection.
   * `onSocket` runs each time the driver opens a socket.
   */
  function transactionLosingItsConnection(n: number, onSocket: () => void = () => {}) {
    const sql = client({
      max: 1,
      backoff: () => 0.02,
      socket: ({ host, port }) => {
        onSocket();
        return net.connect({ host: host[0]!, port: port[0]! });
      },
    });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let waiting!: () => void;
    const atGate = new Promise<void>((resolve) => (waiting = resolve));
    let late: Promise<unknown> | undefined;
    const tx = sql.begin(async (t) => {
      await t`select 1`;
      waiting();
      await gate;
      late = t`insert into late_tx values (${n}) returning n`.then(
        (rows) => ({ resolved: [...rows] }),
        (err: { code?: string }) => ({ rejected: err.code }),
      );
      await late;
    });
    const txOutcome = tx.then(() => 'committed', (err: { code?: string }) => err.code);
    return { sql, open, atGate, txOutcome, late: () => late };
  }

  const committedRows = async (n: number) => {
    const direct = postgres(driver.database.url!, { max: 1, onnotice: () => {} });
    try {
      return await direct`select n from late_tx where n = ${n}`;
    } finally {
      await direct.end();
    }
  };

  it('is refused, not committed on its own, when the pool has reopened the connection', async () => {
    const { sql, open, atGate, txOutcome, late } = transactionLosingItsConnection(1);
    await atGate; // the transaction holds the one connection, with nothing in flight
    const queued = sql`select 'queued' as v`;
    driver.proxy.cut();
    driver.proxy.restore();
    await expect(queued).resolves.toEqual([{ v: 'queued' }]);
    expect(await txOutcome).toMatch(/^CONNECTION_|ECONNRESET/);
    open();
    await new Promise((r) => setTimeout(r, 50));
    expect(await late()).toEqual({ rejected: 'CONNECTION_CLOSED' });
    expect(await committedRows(1)).toEqual([]);
    await expect(sql`select 2 as n`).resolves.toEqual([{ n: 2 }]);
  });

  it('is refused while the connection reopens, and every query after it gets its own rows', async () => {
    let reopened = 0;
    let release = () => {};
    // The transaction's next statement is sent while the new session's start-up is in flight.
    const { sql, open, atGate, txOutcome, late } = transactionLosingItsConnection(2, () => {
      if (++reopened === 2) setImmediate(() => release());
    });
    release = open;
    await atGate;
    const queued = sql`select 'queued' as v`;
    driver.proxy.cut();
    driver.proxy.restore();
    expect(await txOutcome).toMatch(/^CONNECTION_|ECONNRESET/);
    await expect(queued).resolves.toEqual([{ v: 'queued' }]);
    expect(await late()).toEqual({ rejected: 'CONNECTION_CLOSED' });
    for (let i = 0; i < 3; i++) await expect(sql`select ${i}::int as n`).resolves.toEqual([{ n: i }]);
    expect(await committedRows(2)).toEqual([]);
  });

  it('the first query of a new session gets its own answer, not the error that ended the old one', async () => {
    const sql = client({ max: 1, backoff: () => 0.02 });
    const [row] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const pid = row!.pid;
    const sleeping = sql`select pg_sleep(5)`.then(() => 'finished', (err: { code?: string }) => err.code);
    await new Promise((r) => setTimeout(r, 100));
    const admin = postgres(driver.database.url!, { max: 1, onnotice: () => {} });
    try {
      await admin`select pg_terminate_backend(${pid})`;
    } finally {
      await admin.end();
    }
    expect(await sleeping).toMatch(/^CONNECTION_|57P01/);
    await expect(sql`select 'next session' as v`).resolves.toEqual([{ v: 'next session' }]);
  });

  it('settles a query sent between the socket error and its close, instead of resolving it empty later', async () => {
    let socket: net.Socket | undefined;
    const sql = client({
      max: 1,
      backoff: () => 0.02,
      socket: ({ host, port }) => (socket = net.connect({ host: host[0]!, port: port[0]! })),
    });
    await sql`select 1`;
    // The socket closes asynchronously after its error (as when the watchdog in db/client.ts
    // cuts a silent link, or a reset arrives): the idle connection still looks open in between.
    let inTheWindow: Promise<unknown> | undefined;
    socket!.once('error', () =>
      queueMicrotask(() => {
        inTheWindow = sql`select 'in the window' as v`.then(
          (rows) => ({ resolved: [...rows] }),
          (err: { code?: string }) => ({ rejected: err.code }),
        );
      }),
    );
    socket!.destroy(Object.assign(new Error('link cut'), { code: 'ECONNRESET' }));
    await new Promise((r) => setTimeout(r, 100));
    await expect(sql`select 'next session' as v`).resolves.toEqual([{ v: 'next session' }]);
    expect(await inTheWindow).toEqual({ rejected: 'CONNECTION_CLOSED' });
  });

  it('reserves the connection for a transaction also when its BEGIN fills the pipeline', async () => {
    // max_pipeline 0 makes every BEGIN fill it; in production a BEGIN written under back-pressure
    // (the socket's buffer full) took the same branch and skipped the reservation.
    const sql = client({ max: 1, max_pipeline: 0 });
    let pooled: Promise<unknown> | undefined;
    const tx = sql.begin(async (t) => {
      await t`insert into late_tx values (5)`;
      // Not part of the transaction: it must wait for the connection, not run inside it.
      pooled = sql`select txid_current_if_assigned() as xid`.then(
        (rows) => ({ resolved: [...rows] }),
        (err: { code?: string }) => ({ rejected: err.code }),
      );
      await new Promise((r) => setTimeout(r, 50));
      await t`insert into late_tx values (6)`;
    });
    await expect(tx).resolves.toBeUndefined();
    expect(await pooled).toEqual({ resolved: [{ xid: null }] });
    expect(await committedRows(5)).toEqual([{ n: 5 }]);
  });

  it('refuses a statement sent after the transaction\'s ROLLBACK was sent, instead of running it in autocommit', async () => {
    const sql = client({ max: 1 });
    let late: Promise<unknown> | undefined;
    const tx = sql.begin(async (t) => {
      await t`select 1`;
      // Sent once the ROLLBACK is on its way (a Promise.all sibling, a statement nobody awaited).
      setImmediate(() => {
        late = t`insert into late_tx values (7) returning n`.then(
          (rows) => ({ resolved: [...rows] }),
          (err: { code?: string }) => ({ rejected: err.code }),
        );
      });
      throw new Error('the body failed');
    });
    await expect(tx).rejects.toThrow('the body failed');
    await new Promise((r) => setTimeout(r, 50));
    expect(await late).toEqual({ rejected: 'TRANSACTION_ENDED' });
    expect(await committedRows(7)).toEqual([]);
  });

  it('settles a statement waiting in the transaction\'s own queue when the connection closes', async () => {
    const sql = client({ max: 1, backoff: () => 0.02 });
    let queued: Promise<unknown> | undefined;
    const tx = sql.begin(async (t) => {
      // A statement with a parameter that is not prepared yet is described first: the
      // connection counts as full until it answers, so the next statement waits in the
      // transaction's own queue.
      const slow = t`select pg_sleep(${0.5}::float8)`.execute();
      queued = t`select 'queued' as v`.then(
        () => 'resolved',
        (err: { code?: string }) => err.code,
      );
      setTimeout(() => driver.proxy.cut(), 100);
      await Promise.all([slow, queued]);
    });
    await expect(tx).rejects.toMatchObject({ code: expect.stringMatching(/^CONNECTION_|ECONNRESET/) });
    const settled = await Promise.race([queued, new Promise((r) => setTimeout(() => r('still pending after 2 s'), 2000))]);
    expect(settled).toMatch(/^CONNECTION_|ECONNRESET/);
  });
});
