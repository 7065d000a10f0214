import { and, desc, eq, gte, like, lt, lte, type SQL } from 'drizzle-orm';
import { likePrefix, type Db } from '../../db/client.js';
import { adminOperations } from '../../src/audit/table.js';
import { verifyAuditChain } from '../../src/audit/writer.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import type { ChainVerificationReport, Operation, OperationFilter } from './schemas.js';

type OperationRow = typeof adminOperations.$inferSelect;

const toOperation = (row: OperationRow): Operation => ({
  id: row.id,
  occurredAt: new Date(row.occurredAt).toISOString(),
  actorType: row.actorType,
  actorId: row.actorId,
  keyId: row.keyId,
  operation: row.operation,
  targetType: row.targetType,
  targetId: row.targetId,
  reason: row.reason,
  before: row.before ?? null,
  after: row.after ?? null,
  result: row.result,
  correlationId: row.correlationId,
  prevHash: row.prevHash,
  hash: row.hash,
});


/**
 * Reads the audit trail (`admin_operations`, written only by the kernel's audit writer) and
 * verifies its hash chain. Newest first, keyset on id: the writer serialises inserts, so id
 * order is chain order.
 */
export function createAdminOperationService(deps: { db: Db }) {
  const { db } = deps;
  return {
    async list(f: OperationFilter & { limit: number }): Promise<Page<Operation>> {
      const where: SQL[] = [];
      if (f.actorId) where.push(eq(adminOperations.actorId, f.actorId));
      if (f.actorType) where.push(eq(adminOperations.actorType, f.actorType));
      if (f.keyId) where.push(eq(adminOperations.keyId, f.keyId));
      if (f.operation) where.push(eq(adminOperations.operation, f.operation));
      if (f.operationPrefix) where.push(like(adminOperations.operation, likePrefix(f.operationPrefix)));
      if (f.targetType) where.push(eq(adminOperations.targetType, f.targetType));
      if (f.targetId) where.push(eq(adminOperations.targetId, f.targetId));
      if (f.result) where.push(eq(adminOperations.result, f.result));
      if (f.correlationId) where.push(eq(adminOperations.correlationId, f.correlationId));
      if (f.since) where.push(gte(adminOperations.occurredAt, new Date(f.since).toISOString()));
      if (f.until) where.push(lte(adminOperations.occurredAt, new Date(f.until).toISOString()));
      const beforeId = decodeIdCursor(f.cursor);
      if (beforeId !== undefined) where.push(lt(adminOperations.id, beforeId));
      const rows = await db
        .select()
        .from(adminOperations)
        .where(where.length ? and(...where) : undefined)
        .orderBy(desc(adminOperations.id))
        .limit(f.limit + 1);
      return toPage(rows, f.limit, (r) => [r.id], toOperation);
    },

    async recent(n: number): Promise<Operation[]> {
      const rows = await db.select().from(adminOperations).orderBy(desc(adminOperations.id)).limit(n);
      return rows.map(toOperation);
    },

    async byId(id: number): Promise<Operation | undefined> {
      const [row] = await db.select().from(adminOperations).where(eq(adminOperations.id, id)).limit(1);
      return row && toOperation(row);
    },

    /** Walks the whole chain (in batches) from the first entry; see verifyAuditChain. */
    async verify(): Promise<ChainVerificationReport> {
      const v = await verifyAuditChain(db);
      const detail =
        v.problem === 'hash-mismatch'
          ? `Entry ${v.firstBrokenId} does not match its hash: it was changed after it was written.`
          : v.problem === 'link-mismatch'
            ? `Entry ${v.firstBrokenId} does not link to the entry before it: the entry before it was deleted, inserted or rewritten, or this entry's prev_hash was changed.`
            : `All ${v.checked} entries are intact and linked.`;
      return { ok: v.ok, checked: v.checked, firstBrokenId: v.firstBrokenId, reason: v.problem, detail };
    },
  };
}
export type AdminOperationService = ReturnType<typeof createAdminOperationService>;
