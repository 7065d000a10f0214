import { and, asc, count, desc, eq, gt, inArray, lt, lte, type SQL } from 'drizzle-orm';
import type { Db, DbOrTx } from '../../db/client.js';
import type { Actor } from '../../src/audit/writer.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique } from '../../src/problem.js';
import type { ActionFilter, ActionStatus, ActionType, Decision, PendingAction, SecurityAction, Severity } from './schemas.js';
import { actionApprovals, securityActions } from './table.js';

export type ActionRow = typeof securityActions.$inferSelect;
type ApprovalRow = typeof actionApprovals.$inferSelect;

/** An actor that can be told apart from another: API clients always have an id. */
export type KnownActor = Actor & { id: string };

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

const toDecision = (row: ApprovalRow): Decision => ({
  approver: { type: row.approverType, id: row.approverId, keyId: row.approverKeyId },
  decision: row.decision === 'reject' ? 'reject' : 'approve',
  comment: row.comment,
  createdAt: row.createdAt.toISOString(),
});

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function toAction(row: ActionRow, decisions: Decision[]): SecurityAction {
  return {
    id: row.id,
    type: row.type as ActionType,
    params: isObject(row.params) ? row.params : {},
    reason: row.reason,
    severity: row.severity as Severity,
    status: row.status as ActionStatus,
    requiredApprovals: row.requiredApprovals,
    approvals: row.approvals,
    requestedBy: { type: row.requestedByType, id: row.requestedById, keyId: row.requestedByKeyId },
    decisions,
    expiresAt: row.expiresAt.toISOString(),
    result: isObject(row.result) ? row.result : null,
    error: row.error,
    decidedAt: iso(row.decidedAt),
    executionStartedAt: iso(row.executionStartedAt),
    finishedAt: iso(row.finishedAt),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export interface NewAction {
  type: ActionType;
  params: Record<string, unknown>;
  reason: string;
  severity: Severity;
  requiredApprovals: number;
  expiresAt: Date;
  requestedBy: KnownActor;
}

/** Fields a transition may set besides `status` (always with `updatedAt`). */
export type Transition = Partial<Pick<typeof securityActions.$inferInsert, 'approvals' | 'result' | 'error' | 'decidedAt' | 'executionStartedAt' | 'finishedAt'>>;

/**
 * Security actions and their decisions, without HTTP: reads take the pool (or the caller's
 * transaction), writes the caller's transaction, where `lock` has taken the action's row lock
 * first: that lock is what serialises decisions, execution and expiry of one action.
 */
export function createSecurityActionService(deps: { db: Db }) {
  const { db } = deps;

  async function decisionsOf(ids: number[], q: DbOrTx = db): Promise<Map<number, Decision[]>> {
    const byAction = new Map<number, Decision[]>();
    if (ids.length === 0) return byAction;
    const rows = await q.select().from(actionApprovals).where(inArray(actionApprovals.actionId, ids)).orderBy(asc(actionApprovals.id));
    for (const row of rows) {
      const list = byAction.get(row.actionId) ?? [];
      list.push(toDecision(row));
      byAction.set(row.actionId, list);
    }
    return byAction;
  }

  async function withDecisions(row: ActionRow, q: DbOrTx = db): Promise<SecurityAction> {
    return toAction(row, (await decisionsOf([row.id], q)).get(row.id) ?? []);
  }

  return {
    withDecisions,

    async insert(tx: DbOrTx, input: NewAction): Promise<ActionRow> {
      const [row] = await tx
        .insert(securityActions)
        .values({
          type: input.type,
          params: input.params,
          reason: input.reason,
          severity: input.severity,
          requiredApprovals: input.requiredApprovals,
          expiresAt: input.expiresAt,
          requestedByType: input.requestedBy.type,
          requestedById: input.requestedBy.id,
          requestedByKeyId: input.requestedBy.keyId,
        })
        .returning();
      return row!;
    },

    /** The action's row under `FOR UPDATE`: decisions, execution and expiry of it queue here. */
    async lock(tx: DbOrTx, id: number): Promise<ActionRow | undefined> {
      const [row] = await tx.select().from(securityActions).where(eq(securityActions.id, id)).for('update');
      return row;
    },

    async byId(id: number, q: DbOrTx = db): Promise<SecurityAction | undefined> {
      const [row] = await q.select().from(securityActions).where(eq(securityActions.id, id)).limit(1);
      return row && withDecisions(row, q);
    },

    /** Newest first; keyset on `id`. */
    async list(filter: ActionFilter & { limit: number }): Promise<Page<SecurityAction>> {
      const where: SQL[] = [];
      if (filter.status) where.push(eq(securityActions.status, filter.status));
      if (filter.type) where.push(eq(securityActions.type, filter.type));
      if (filter.severity) where.push(eq(securityActions.severity, filter.severity));
      if (filter.requestedBy) where.push(eq(securityActions.requestedById, filter.requestedBy));
      const beforeId = decodeIdCursor(filter.cursor);
      if (beforeId !== undefined) where.push(lt(securityActions.id, beforeId));
      const rows = await db
        .select()
        .from(securityActions)
        .where(where.length ? and(...where) : undefined)
        .orderBy(desc(securityActions.id))
        .limit(filter.limit + 1);
      const decisions = await decisionsOf(rows.slice(0, filter.limit).map((r) => r.id));
      return toPage(rows, filter.limit, (r) => [r.id], (r) => toAction(r, decisions.get(r.id) ?? []));
    },

    /** One decision; a second one by the same approver is 409 (the unique constraint decides). */
    async addDecision(tx: DbOrTx, actionId: number, approver: KnownActor, decision: 'approve' | 'reject', comment: string | null): Promise<void> {
      await tx
        .insert(actionApprovals)
        .values({ actionId, decision, comment, approverType: approver.type, approverId: approver.id, approverKeyId: approver.keyId })
        .catch(conflictOnUnique(`Approver ${approver.id} has already decided on action ${actionId}; one decision per approver.`, { approverId: approver.id }));
    },

    async transition(tx: DbOrTx, id: number, status: ActionStatus, set: Transition = {}): Promise<ActionRow> {
      const [row] = await tx
        .update(securityActions)
        .set({ ...set, status, updatedAt: new Date() })
        .where(eq(securityActions.id, id))
        .returning();
      return row!;
    },

    /** Pending actions past their expiry, locked (skipping any another transaction holds). */
    async lockExpiredPending(tx: DbOrTx, now: Date, limit: number): Promise<ActionRow[]> {
      return tx
        .select()
        .from(securityActions)
        .where(and(eq(securityActions.status, 'pending'), lte(securityActions.expiresAt, now)))
        .orderBy(asc(securityActions.expiresAt))
        .limit(limit)
        .for('update', { skipLocked: true });
    },

    /**
     * Executions that started before `before` and hold no lock: the process running them died
     * (or lost the database) between claiming them and committing their effect.
     */
    async lockStaleExecuting(tx: DbOrTx, before: Date, limit: number): Promise<ActionRow[]> {
      return tx
        .select()
        .from(securityActions)
        .where(and(eq(securityActions.status, 'executing'), lte(securityActions.executionStartedAt, before)))
        .orderBy(asc(securityActions.id))
        .limit(limit)
        .for('update', { skipLocked: true });
    },

    /** Pending and not yet past their expiry (the sweep may not have recorded it). */
    /** Ids of actions approved before `before` whose execution never started. */
    async leftApproved(before: Date, limit: number): Promise<number[]> {
      const rows = await db
        .select({ id: securityActions.id })
        .from(securityActions)
        .where(and(eq(securityActions.status, 'approved'), lte(securityActions.decidedAt, before)))
        .orderBy(asc(securityActions.id))
        .limit(limit);
      return rows.map((r) => r.id);
    },

    /** Pending and not yet past their expiry (the sweep may not have recorded it). */
    async pendingCount(now: Date = new Date()): Promise<number> {
      const [row] = await db
        .select({ n: count() })
        .from(securityActions)
        .where(and(eq(securityActions.status, 'pending'), gt(securityActions.expiresAt, now)));
      return row?.n ?? 0;
    },

    /** Pending actions, oldest first (the longest waiting on top). */
    async pending(limit: number, now: Date = new Date()): Promise<PendingAction[]> {
      const rows = await db
        .select()
        .from(securityActions)
        .where(and(eq(securityActions.status, 'pending'), gt(securityActions.expiresAt, now)))
        .orderBy(asc(securityActions.id))
        .limit(Math.max(1, Math.min(limit, 500)));
      return rows.map((r) => ({
        id: r.id,
        type: r.type as ActionType,
        severity: r.severity as Severity,
        reason: r.reason,
        requestedBy: { type: r.requestedByType, id: r.requestedById, keyId: r.requestedByKeyId },
        approvals: r.approvals,
        requiredApprovals: r.requiredApprovals,
        createdAt: r.createdAt.toISOString(),
        expiresAt: r.expiresAt.toISOString(),
      }));
    },
  };
}
export type SecurityActionService = ReturnType<typeof createSecurityActionService>;
