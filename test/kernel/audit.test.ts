import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../db/client.js';
import { adminOperations } from '../../src/audit/table.js';
import { canonicalJson, GENESIS_HASH, SYSTEM_ACTOR, verifyAuditChain } from '../../src/audit/writer.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

describe('audit writer', () => {
  it('chains each entry to the previous one and verifies', async () => {
    const { app } = t;
    for (let i = 0; i < 5; i++) {
      await app.db.transaction((tx) =>
        app.audit.record(tx, null, { actor: SYSTEM_ACTOR, operation: 'test.write', targetType: 'thing', targetId: i, before: { n: i }, after: { n: i + 1, nested: { b: 1, a: [1, 'x'] } }, reason: 'because' }),
      );
    }
    // The chain starts with the bootstrap admin key's entry, written at start.
    const rows = await app.db.select().from(adminOperations).orderBy(adminOperations.id);
    expect(rows.map((r) => r.operation)).toEqual(['api-key.bootstrap', ...Array(5).fill('test.write')]);
    expect(rows[0]!.prevHash).toBe(GENESIS_HASH);
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.prevHash).toBe(rows[i - 1]!.hash);
    expect(await verifyAuditChain(app.db, 2)).toEqual({ ok: true, checked: 6, firstBrokenId: null, problem: null, lastVerifiedId: rows[5]!.id });
  });

  it('writes nothing when the caller’s transaction rolls back', async () => {
    const { app } = t;
    const before = await app.db.$count(adminOperations);
    await expect(
      app.db.transaction(async (tx) => {
        await app.audit.record(tx, null, { operation: 'test.rollback', targetType: 'thing' });
        throw new Error('write failed after the audit entry');
      }),
    ).rejects.toThrow('write failed');
    expect(await app.db.$count(adminOperations)).toBe(before);
  });

  it('reports the first row edited behind the API’s back', async () => {
    const { app } = t;
    const rows = await app.db.select().from(adminOperations).orderBy(adminOperations.id);
    const victim = rows[2]!;
    await app.db.execute(sql`update admin_operations set reason = 'rewritten' where id = ${victim.id}`);
    const result = await verifyAuditChain(app.db);
    expect(result).toMatchObject({ ok: false, firstBrokenId: victim.id, problem: 'hash-mismatch', lastVerifiedId: rows[1]!.id });
  });

  it('reports a deleted row as a broken link', async () => {
    const { app } = t;
    const rows = await queryRows<{ id: number }>(app.db, sql`select id from admin_operations order by id`);
    // repair the earlier edit by deleting that row: the next row's link no longer matches
    await app.db.execute(sql`delete from admin_operations where id = ${rows[2]!.id}`);
    const result = await verifyAuditChain(app.db);
    expect(result).toMatchObject({ ok: false, firstBrokenId: Number(rows[3]!.id), problem: 'link-mismatch' });
  });

  it('hashes JSON canonically whatever the key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe(canonicalJson({ a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 }));
  });
});
