import { createHash } from 'node:crypto';
import { asc, desc, eq, gt, sql } from 'drizzle-orm';
import { lockKey, queryRows, type Db, type DbOrTx } from '../../db/client.js';
import { adminOperations, auditChainAnchor } from './table.js';

export interface Actor {
  type: 'client' | 'system' | 'anonymous' | 'bootstrap';
  /** Client id (or a system component name). */
  id: string | null;
  keyId: string | null;
}

export const SYSTEM_ACTOR: Actor = { type: 'system', id: 'kernel', keyId: null };
export const ANONYMOUS_ACTOR: Actor = { type: 'anonymous', id: null, keyId: null };

export interface AuditEntry {
  actor: Actor;
  operation: string;
  targetType: string;
  targetId?: string | number | null;
  reason?: string | null;
  before?: unknown;
  after?: unknown;
  result?: 'success' | 'failure';
  correlationId?: string | null;
}

export const GENESIS_HASH = '0'.repeat(64);
const AUDIT_LOCK = lockKey('audit-chain');

/** JSON with sorted keys, so the hash of a row read back from jsonb equals the hash written. */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

type ChainedFields = {
  occurredAt: string;
  actorType: string;
  actorId: string | null;
  keyId: string | null;
  operation: string;
  targetType: string;
  targetId: string | null;
  reason: string | null;
  before: unknown;
  after: unknown;
  result: string;
  correlationId: string | null;
  prevHash: string;
};

export function chainHash(row: ChainedFields): string {
  const material = canonicalJson({
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
  });
  return createHash('sha256').update(material).digest('hex');
}

/**
 * Records one audit entry inside the caller's transaction (`tx`), so the entry exists exactly
 * when the write it describes does. Writers are serialised by a transaction-scoped advisory
 * lock, which keeps the hash chain linear across instances.
 */
export async function recordAudit(tx: DbOrTx, entry: AuditEntry): Promise<{ id: number; hash: string }> {
  await tx.execute(sql`select pg_advisory_xact_lock(${AUDIT_LOCK.toString()}::bigint)`);
  const [last] = await tx.select({ hash: adminOperations.hash }).from(adminOperations).orderBy(desc(adminOperations.id)).limit(1);
  const fields: ChainedFields = {
    occurredAt: new Date().toISOString(),
    actorType: entry.actor.type,
    actorId: entry.actor.id,
    keyId: entry.actor.keyId,
    operation: entry.operation,
    targetType: entry.targetType,
    targetId: entry.targetId === undefined || entry.targetId === null ? null : String(entry.targetId),
    reason: entry.reason ?? null,
    before: entry.before ?? null,
    after: entry.after ?? null,
    result: entry.result ?? 'success',
    correlationId: entry.correlationId ?? null,
    prevHash: last?.hash ?? GENESIS_HASH,
  };
  const hash = chainHash(fields);
  const [row] = await tx.insert(adminOperations).values({ ...fields, hash }).returning({ id: adminOperations.id });
  return { id: row!.id, hash };
}

export interface ChainVerification {
  ok: boolean;
  checked: number;
  firstBrokenId: number | null;
  problem: 'hash-mismatch' | 'link-mismatch' | null;
  /** The newest entry the walk found intact (the chain up to it holds); null when none was. */
  lastVerifiedId: number | null;
}

export const AUDIT_CHAIN = 'admin_operations';

/**
 * Walks the chain in id order, in batches, and reports the first row whose hash or link is wrong.
 * After a retention purge the walk starts at the oldest kept entry, which must link to the hash
 * of the last purged one (the anchor); before any purge, the first entry links to the genesis hash.
 */
export async function verifyAuditChain(db: Db, batchSize = 1000): Promise<ChainVerification> {
  const [anchor] = await db.select().from(auditChainAnchor).where(eq(auditChainAnchor.chain, AUDIT_CHAIN));
  let prevHash = anchor?.throughHash ?? GENESIS_HASH;
  let afterId = anchor?.throughId ?? 0;
  let checked = 0;
  let lastVerifiedId: number | null = null;
  for (;;) {
    const rows = await db.select().from(adminOperations).where(gt(adminOperations.id, afterId)).orderBy(asc(adminOperations.id)).limit(batchSize);
    for (const row of rows) {
      if (row.prevHash !== prevHash) return { ok: false, checked, firstBrokenId: row.id, problem: 'link-mismatch', lastVerifiedId };
      if (chainHash(row) !== row.hash) return { ok: false, checked, firstBrokenId: row.id, problem: 'hash-mismatch', lastVerifiedId };
      prevHash = row.hash;
      afterId = row.id;
      lastVerifiedId = row.id;
      checked++;
    }
    if (rows.length < batchSize) return { ok: true, checked, firstBrokenId: null, problem: null, lastVerifiedId };
  }
}

/**
 * The first id that must stay at `cutoff`: the lowest id of an entry at or after the cutoff, or
 * the newest entry (kept always: the next write links to it). Purging only ids below it deletes
 * a prefix of the chain, never a hole in it.
 */
async function keepFromId(tx: DbOrTx, cutoff: Date): Promise<number | null> {
  const [row] = await queryRows<{ boundary: string | number | null }>(
    tx,
    sql`select coalesce((select min(${adminOperations.id}) from ${adminOperations} where ${adminOperations.occurredAt} >= ${cutoff.toISOString()}::timestamptz), (select max(${adminOperations.id}) from ${adminOperations})) as boundary`,
  );
  return row?.boundary === null || row?.boundary === undefined ? null : Number(row.boundary);
}

/**
 * Deletes up to `limit` of the oldest entries older than `cutoff`, in one short transaction
 * under the writers' lock, and moves the anchor to the last one deleted so the kept chain still
 * verifies. Returns how many went.
 */
export async function purgeAuditBatch(db: Db, cutoff: Date, limit: number): Promise<number> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${AUDIT_LOCK.toString()}::bigint)`);
    const boundary = await keepFromId(tx, cutoff);
    if (boundary === null) return 0;
    const doomed = await tx
      .select({ id: adminOperations.id, hash: adminOperations.hash })
      .from(adminOperations)
      .where(sql`${adminOperations.id} < ${boundary}`)
      .orderBy(asc(adminOperations.id))
      .limit(limit);
    const last = doomed[doomed.length - 1];
    if (!last) return 0;
    await tx.delete(adminOperations).where(sql`${adminOperations.id} <= ${last.id}`);
    await tx
      .insert(auditChainAnchor)
      .values({ chain: AUDIT_CHAIN, throughId: last.id, throughHash: last.hash })
      .onConflictDoUpdate({ target: auditChainAnchor.chain, set: { throughId: last.id, throughHash: last.hash, updatedAt: new Date() } });
    return doomed.length;
  });
}

/** How many entries `purgeAuditBatch` would delete, all batches together, at `cutoff`. */
export async function countPurgeableAudit(db: Db, cutoff: Date): Promise<number> {
  const boundary = await keepFromId(db, cutoff);
  if (boundary === null) return 0;
  const [row] = await queryRows<{ n: string | number }>(db, sql`select count(*) as n from ${adminOperations} where ${adminOperations.id} < ${boundary}`);
  return Number(row?.n ?? 0);
}
