import { sql } from 'drizzle-orm';
import { bigint, check, index, integer, jsonb, pgTable, text, timestamp, unique, varchar } from 'drizzle-orm/pg-core';

/**
 * A security action someone asked for (block an address, revoke a key, ...), waiting for
 * approvals, then executed through the owning pack's service. `status` follows the state
 * machine in service.ts; `approvals` counts the approve decisions in `action_approvals` (kept
 * here so the row lock that serialises decisions also guards the count).
 */
export const securityActions = pgTable(
  'security_actions',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    type: varchar('type', { length: 32 }).notNull(),
    params: jsonb('params').notNull(),
    reason: text('reason').notNull(),
    severity: varchar('severity', { length: 16 }).notNull(),
    status: varchar('status', { length: 16 }).notNull().default('pending'),
    requiredApprovals: integer('required_approvals').notNull(),
    approvals: integer('approvals').notNull().default(0),
    requestedByType: text('requested_by_type').notNull(),
    requestedById: text('requested_by_id').notNull(),
    requestedByKeyId: text('requested_by_key_id'),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    /** What the execution did (rule id, key revoked, ...); set with `executed`. */
    result: jsonb('result'),
    /** Why the execution failed, sanitised (no SQL, stack or secret); set with `failed`. */
    error: text('error'),
    /** When the action left `pending` (approved, rejected, cancelled or expired). */
    decidedAt: timestamp('decided_at', { withTimezone: true, mode: 'date' }),
    executionStartedAt: timestamp('execution_started_at', { withTimezone: true, mode: 'date' }),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    check('security_actions_status_check', sql`${t.status} in ('pending', 'approved', 'executing', 'executed', 'failed', 'rejected', 'cancelled', 'expired')`),
    check('security_actions_severity_check', sql`${t.severity} in ('low', 'medium', 'high', 'critical')`),
    check('security_actions_type_check', sql`${t.type} in ('block_ip', 'unblock_ip', 'revoke_api_key', 'suspend_client', 'set_maintenance_mode', 'disable_flag')`),
    check('security_actions_approvals_check', sql`${t.requiredApprovals} between 1 and 10 and ${t.approvals} >= 0`),
    // The list's status filter, the expiry sweep (pending by expiry) and the dashboard's pending count.
    index('security_actions_status_id_idx').on(t.status, t.id),
    index('security_actions_status_expires_idx').on(t.status, t.expiresAt),
    index('security_actions_requested_by_id_idx').on(t.requestedById, t.id),
    // The retention purge and time-ranged exports of the `security_actions` dataset.
    index('security_actions_created_at_idx').on(t.createdAt),
  ],
);

/** One decision per approver per action; the unique constraint is what refuses a second one. */
export const actionApprovals = pgTable(
  'action_approvals',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    actionId: bigint('action_id', { mode: 'number' })
      .notNull()
      .references(() => securityActions.id, { onDelete: 'cascade' }),
    decision: varchar('decision', { length: 16 }).notNull(),
    comment: text('comment'),
    approverType: text('approver_type').notNull(),
    approverId: text('approver_id').notNull(),
    approverKeyId: text('approver_key_id'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    check('action_approvals_decision_check', sql`${t.decision} in ('approve', 'reject')`),
    unique('action_approvals_action_approver_key').on(t.actionId, t.approverId),
  ],
);
