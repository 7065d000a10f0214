import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../db/client.js';
import { definePack } from '../../src/pack.js';
import type { StateEntry } from '../../src/state-cache.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

// A pack whose hot-path state is a counter row: the pattern every pack with in-memory state follows.
declare module 'fastify' {
  interface FastifyInstance {
    counterState: StateEntry<number>;
  }
}
const counterPack = definePack({
  name: 'counter-test',
  code: 'ZZ',
  description: 'test: state cache round trip',
  async register(app) {
    await app.db.execute(sql`create table if not exists counter_test (id int primary key, n int not null)`);
    await app.db.execute(sql`insert into counter_test values (1, 0) on conflict do nothing`);
    const load = async () => Number((await queryRows<{ n: number }>(app.db, sql`select n from counter_test where id = 1`))[0]?.n ?? 0);
    app.decorate('counterState', app.stateCache.register('counter', load, 0));
  },
});

async function bump(app: FastifyInstance, to: number): Promise<void> {
  await app.db.transaction(async (tx) => {
    await tx.execute(sql`update counter_test set n = ${to} where id = 1`);
    await app.stateCache.notify(tx, 'counter');
  });
}

async function eventually(check: () => boolean, ms = 1000): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { extraPacks: [counterPack] });
});
afterAll(async () => t?.close());

describe('state cache', () => {
  it('loads at start and reloads on NOTIFY after commit', async () => {
    expect(t.app.counterState.get()).toBe(0);
    await bump(t.app, 7);
    await eventually(() => t.app.counterState.get() === 7);
  });

  it('does not see a change that rolled back', async () => {
    await expect(
      t.app.db.transaction(async (tx) => {
        await tx.execute(sql`update counter_test set n = 99 where id = 1`);
        await t.app.stateCache.notify(tx, 'counter');
        throw new Error('rollback');
      }),
    ).rejects.toThrow('rollback');
    await t.app.counterState.reload();
    expect(t.app.counterState.get()).toBe(7);
  });

  it('keeps the last value when a reload fails', async () => {
    await t.app.db.execute(sql`alter table counter_test rename to counter_test_away`);
    try {
      await t.app.counterState.reload();
      expect(t.app.counterState.get()).toBe(7);
    } finally {
      await t.app.db.execute(sql`alter table counter_test_away rename to counter_test`);
    }
  });

  describe.skipIf(!process.env.TEST_DATABASE_URL && !process.env.DATABASE_URL)('across instances (PostgreSQL)', () => {
    it('a change made through one instance reaches another within one second', async () => {
      const second = await t.another();
      expect(second.counterState.get()).toBe(7);
      await bump(t.app, 42);
      const waited = await eventually(() => second.counterState.get() === 42, 1000);
      expect(waited).toBeLessThan(1000);
      await bump(second, 43);
      await eventually(() => t.app.counterState.get() === 43, 1000);
    });
  });
});
