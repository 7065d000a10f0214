import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../db/client.js';
import { adminOperations } from '../../src/audit/table.js';
import { definePack } from '../../src/pack.js';
import type { StateEntry } from '../../src/state-cache.js';
import { createWriteThrough } from '../../src/write-through.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

// A pack whose in-memory state is one row, written only through app.writeThrough.
declare module 'fastify' {
  interface FastifyInstance {
    wtState: StateEntry<number>;
  }
}
const wtPack = definePack({
  name: 'write-through-test',
  code: 'ZZ',
  description: 'test: write-through helper',
  async register(app) {
    await app.db.execute(sql`create table if not exists wt_test (id int primary key, n int not null)`);
    await app.db.execute(sql`insert into wt_test values (1, 0) on conflict do nothing`);
    const load = async () => Number((await queryRows<{ n: number }>(app.db, sql`select n from wt_test where id = 1`))[0]?.n ?? 0);
    app.decorate('wtState', app.stateCache.register('wt', load, 0));
  },
});

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { extraPacks: [wtPack] });
});
afterAll(async () => t?.close());

const auditFor = (targetId: string) =>
  t.app.db.select().from(adminOperations).where(eq(adminOperations.targetId, targetId)).orderBy(adminOperations.id);

describe('app.writeThrough', () => {
  it('writes, audits, notifies and reloads: this instance reads the write when the call returns, another hears it', async () => {
    const other = await t.another();
    const result = await t.app.writeThrough(null, { refresh: [t.app.wtState] }, async (tx) => {
      await tx.execute(sql`update wt_test set n = 7 where id = 1`);
      return { result: 'done', audit: { operation: 'wt.set', targetType: 'wt', targetId: 'wt-1', before: { n: 0 }, after: { n: 7 } } };
    });
    expect(result).toBe('done');
    expect(t.app.wtState.get()).toBe(7);
    expect((await auditFor('wt-1')).map((r) => r.operation)).toEqual(['wt.set']);
    const start = Date.now();
    while (other.wtState.get() !== 7 && Date.now() - start < 2000) await new Promise((r) => setTimeout(r, 10));
    expect(other.wtState.get()).toBe(7);
  });

  it('records several audit entries for one write, or none', async () => {
    await t.app.writeThrough(null, {}, async () => ({
      result: null,
      audit: [
        { operation: 'wt.bulk', targetType: 'wt', targetId: 'wt-2' },
        { operation: 'wt.bulk', targetType: 'wt', targetId: 'wt-2' },
      ],
    }));
    expect(await auditFor('wt-2')).toHaveLength(2);
    await t.app.writeThrough(null, {}, async () => ({ result: null, audit: null }));
  });

  it('rolls everything back when the body throws: no row change, no audit entry, no reload', async () => {
    const before = t.app.wtState.get();
    await expect(
      t.app.writeThrough(null, { refresh: [t.app.wtState] }, async (tx) => {
        await tx.execute(sql`update wt_test set n = 99 where id = 1`);
        await t.app.audit.record(tx, null, { operation: 'wt.fail', targetType: 'wt', targetId: 'wt-3' });
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(await auditFor('wt-3')).toHaveLength(0);
    await t.app.wtState.reload();
    expect(t.app.wtState.get()).toBe(before);
  });
});

describe('app.writeThrough with nothing to change', () => {
  it('notifies and reloads nothing when the body says it changed nothing, and does otherwise, audited or not', async () => {
    // The kernel's own helper, built again around a state cache that counts what it is told.
    const notified: string[] = [];
    let reloads = 0;
    const writeThrough = createWriteThrough({
      db: t.app.db,
      audit: t.app.audit,
      stateCache: { notify: (tx, name) => (notified.push(name), t.app.stateCache.notify(tx, name)) },
    });
    const entry = { name: t.app.wtState.name, reload: async () => void reloads++ };

    expect(await writeThrough(null, { refresh: [entry] }, async () => ({ result: 'idle', audit: null, changed: false }))).toBe('idle');
    await writeThrough(null, { refresh: [entry] }, async () => ({ result: null, audit: [], changed: false }));
    expect({ notified, reloads }).toEqual({ notified: [], reloads: 0 });

    await writeThrough(null, { refresh: [entry] }, async () => ({ result: null, audit: { operation: 'wt.sweep', targetType: 'wt', targetId: 'wt-4' } }));
    expect({ notified, reloads }).toEqual({ notified: ['wt'], reloads: 1 });
    // A change recorded elsewhere (the caller audits it in a wider write) is still announced.
    await writeThrough(null, { refresh: [entry] }, async () => ({ result: null, audit: null }));
    expect({ notified, reloads }).toEqual({ notified: ['wt', 'wt'], reloads: 2 });
    expect(await auditFor('wt-4')).toHaveLength(1);
  });
});
