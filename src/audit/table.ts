import { bigint, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * The audit trail of every privileged operation (pack UF reads it; the kernel's audit writer
 * fills it). Each row's `hash` covers its content and the previous row's hash, so an edited or
 * deleted row breaks the chain at that point.
 */
export const adminOperations = pgTable(
  'admin_operations',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'string' }).notNull(),
    actorType: text('actor_type').notNull(),
    actorId: text('actor_id'),
    keyId: text('key_id'),
    operation: text('operation').notNull(),
    targetType: text('target_type').notNull(),
    targetId: text('target_id'),
    reason: text('reason'),
    before: jsonb('before'),
    after: jsonb('after'),
    result: text('result').notNull().default('success'),
    correlationId: text('correlation_id'),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
    chainVersion: integer('chain_version').notNull().default(1),
  },
  (t) => [
    index('admin_operations_occurred_idx').on(t.occurredAt, t.id),
    // text_pattern_ops: the operations list filters by exact operation or by prefix (`LIKE 'flag.%'`),
    // and only this operator class lets a prefix LIKE use the index under any collation.
    index('admin_operations_operation_idx').on(t.operation.op('text_pattern_ops'), t.id),
    index('admin_operations_actor_idx').on(t.actorId, t.id),
    index('admin_operations_actor_type_idx').on(t.actorType, t.id),
    index('admin_operations_key_idx').on(t.keyId, t.id),
    index('admin_operations_target_idx').on(t.targetType, t.targetId, t.id),
    index('admin_operations_result_idx').on(t.result, t.id),
    index('admin_operations_correlation_idx').on(t.correlationId),
  ],
);

/**
 * Where the audit chain starts after a retention purge: the id and hash of the last purged
 * entry. The oldest kept entry must link to `through_hash`, so verification starts there and
 * deleting kept entries (or this row) still breaks the chain. One row, `chain = 'admin_operations'`.
 */
export const auditChainAnchor = pgTable('audit_chain_anchor', {
  chain: text('chain').primaryKey(),
  throughId: bigint('through_id', { mode: 'number' }).notNull(),
  throughHash: text('through_hash').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});
