import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { SYSTEM_ACTOR } from '../../src/audit/writer.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';

// Its own app (and database): these tests break the chain on purpose.
let t: TestApp;
const ids: number[] = [];
let earlier = 0; // entries written before ours (the bootstrap admin key's creation, ...)
beforeAll(async () => {
  t = await createTestApp();
  earlier = await t.app.db.$count(adminOperations);
  for (let i = 0; i < 6; i++) {
    const { id } = await t.app.db.transaction((tx) =>
      t.app.audit.record(tx, null, { actor: SYSTEM_ACTOR, operation: 'chain.test', targetType: 'thing', targetId: i, before: { n: i }, after: { n: i + 1 }, reason: `step ${i}` }),
    );
    ids.push(id);
  }
});
afterAll(async () => t?.close());

const verify = async () => {
  const res = await t.inject({ method: 'GET', url: '/system/admin/operations/verify' });
  expect(res.statusCode).toBe(200);
  return res.json<{ ok: boolean; checked: number; firstBrokenId: number | null; reason: string | null; detail: string }>();
};

describe('GET /system/admin/operations/verify (UF)', () => {
  it('reports an intact chain', async () => {
    expect(await verify()).toMatchObject({ ok: true, checked: earlier + 6, firstBrokenId: null, reason: null });
  });

  it('reports a row edited behind the API, and is intact again once the edit is undone', async () => {
    const victim = ids[2]!;
    await t.app.db.execute(sql`update admin_operations set after = '{"n": 999}'::jsonb where id = ${victim}`);
    const broken = await verify();
    expect(broken).toMatchObject({ ok: false, checked: earlier + 2, firstBrokenId: victim, reason: 'hash-mismatch' });
    expect(broken.detail).toContain(String(victim));

    await t.app.db.execute(sql`update admin_operations set after = '{"n": 3}'::jsonb where id = ${victim}`);
    expect(await verify()).toMatchObject({ ok: true, checked: earlier + 6 });
  });

  it('reports an edited row even when its own hash was recomputed: the next row no longer links to it', async () => {
    const victim = ids[1]!;
    const [row] = await t.app.db.execute(sql`select hash from admin_operations where id = ${victim}`).then((r) => (Array.isArray(r) ? r : (r as { rows: unknown[] }).rows) as Array<{ hash: string }>);
    await t.app.db.execute(sql`update admin_operations set hash = ${'f'.repeat(64)} where id = ${victim}`);
    // Its own content no longer matches the hash column: that row is the first broken one.
    expect(await verify()).toMatchObject({ ok: false, firstBrokenId: victim, reason: 'hash-mismatch' });
    await t.app.db.execute(sql`update admin_operations set hash = ${row!.hash} where id = ${victim}`);
    expect((await verify()).ok).toBe(true);
  });

  it('reports a row deleted in the middle as a broken link at the row after it', async () => {
    await t.app.db.execute(sql`delete from admin_operations where id = ${ids[3]!}`);
    const broken = await verify();
    expect(broken).toMatchObject({ ok: false, checked: earlier + 3, firstBrokenId: ids[4], reason: 'link-mismatch' });
    expect(broken.detail).toMatch(/deleted/);
  });
});
