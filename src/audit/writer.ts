import { createHash } from 'node:crypto';
import { asc, desc, gt, sql } from 'drizzle-orm';
import { lockKey, type Db, type DbOrTx } from '../../db/client.js';
import { adminOperations } from './table.js';

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
}

/** Walks the chain in id order, in batches, and reports the first row whose hash or link is wrong. */
export async function verifyAuditChain(db: Db, batchSize = 1000): Promise<ChainVerification> {
  let prevHash = GENESIS_HASH;
  let afterId = 0;
  let checked = 0;
  for (;;) {
    const rows = await db.select().from(adminOperations).where(gt(adminOperations.id, afterId)).orderBy(asc(adminOperations.id)).limit(batchSize);
    for (const row of rows) {
      if (row.prevHash !== prevHash) return { ok: false, checked, firstBrokenId: row.id, problem: 'link-mismatch' };
      if (chainHash(row) !== row.hash) return { ok: false, checked, firstBrokenId: row.id, problem: 'hash-mismatch' };
      prevHash = row.hash;
      afterId = row.id;
      checked++;
    }
    if (rows.length < batchSize) return { ok: true, checked, firstBrokenId: null, problem: null };
  }
}
