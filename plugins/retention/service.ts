import { setTimeout as sleep } from 'node:timers/promises';
import { and, asc, eq, gt, sql, type SQL } from 'drizzle-orm';
import { getTableConfig } from 'drizzle-orm/pg-core';
import { queryRows, type Db, type DbOrTx } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique, ProblemError } from '../../src/problem.js';
import type { RetentionCategory, RetentionRegistry } from '../../src/retention.js';
import type { CategoryInfo, CreatePolicy, Policy, PolicyFilter, UpdatePolicy } from './schemas.js';
import { dataRetentionPolicies } from './table.js';

type PolicyRow = typeof dataRetentionPolicies.$inferSelect;

const DAY_MS = 86_400_000;

const toPolicy = (row: PolicyRow): Policy => ({
  id: row.id,
  category: row.category,
  retainDays: row.retainDays,
  enabled: row.enabled,
  lastRunAt: row.lastRunAt ? row.lastRunAt.toISOString() : null,
  lastRunStatus: row.lastRunStatus === 'complete' || row.lastRunStatus === 'partial' || row.lastRunStatus === 'failed' ? row.lastRunStatus : null,
  lastRunError: row.lastRunError,
  lastRunPurged: row.lastRunPurged,
  rowsPurgedTotal: row.rowsPurgedTotal,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

export const floorOf = (category: RetentionCategory): number => category.minRetainDays ?? 1;

export const cutoffFor = (retainDays: number, now = Date.now()): Date => new Date(now - retainDays * DAY_MS);

/**
 * One generic batch: up to `limit` rows older than the cutoff (and matching the category's own
 * condition), chosen by id and deleted in one statement, its own short transaction.
 */
async function deleteBatch(db: Db, c: RetentionCategory, cutoff: Date, limit: number): Promise<number> {
  const extra = c.where ? sql` and (${c.where})` : sql``;
  const [row] = await queryRows<{ n: string | number }>(
    db,
    sql`with doomed as (select ${c.idColumn} as id from ${c.table} where ${c.timeColumn} < ${cutoff.toISOString()}::timestamptz${extra} limit ${limit}),
      gone as (delete from ${c.table} where ${c.idColumn} in (select id from doomed) returning 1)
      select count(*) as n from gone`,
  );
  return Number(row?.n ?? 0);
}

async function countRows(db: Db, c: RetentionCategory, cutoff: Date): Promise<number> {
  const extra = c.where ? sql` and (${c.where})` : sql``;
  const [row] = await queryRows<{ n: string | number }>(db, sql`select count(*) as n from ${c.table} where ${c.timeColumn} < ${cutoff.toISOString()}::timestamptz${extra}`);
  return Number(row?.n ?? 0);
}

export interface PurgeOptions {
  batchSize: number;
  /** Pause between batches, so writers and vacuum keep up. */
  pauseMs: number;
  /** Stop after this long (`partial`); the next run goes on. */
  budgetMs: number;
  signal?: AbortSignal;
  onBatch?: (rows: number) => void;
}

export interface PurgeOutcome {
  purged: number;
  batches: number;
  status: 'complete' | 'partial';
}

export interface RetentionServiceDeps {
  db: Db;
  registry: RetentionRegistry;
}

/** Policies and purges, without HTTP: writes take the caller's transaction. */
export function createRetentionService({ db, registry }: RetentionServiceDeps) {
  /** The category, or a 422 naming the registered ones. */
  const categoryOf = (name: string): RetentionCategory => {
    const c = registry.get(name);
    if (!c) throw new ProblemError('unprocessable', { detail: `Unknown retention category '${name}'; registered: ${registry.list().map((x) => x.name).join(', ')}.`, extensions: { category: name } });
    return c;
  };
  const checkFloor = (c: RetentionCategory, retainDays: number) => {
    const floor = floorOf(c);
    if (retainDays < floor) {
      throw new ProblemError('unprocessable', { detail: `${c.name} must be kept at least ${floor} days; ${retainDays} is below the floor.`, extensions: { category: c.name, minRetainDays: floor } });
    }
  };
  const policyRow = async (q: DbOrTx, category: string) => (await q.select().from(dataRetentionPolicies).where(eq(dataRetentionPolicies.category, category)).limit(1))[0];

  return {
    categoryOf,

    categories: async (): Promise<CategoryInfo[]> => {
      const policies = new Map((await db.select().from(dataRetentionPolicies)).map((p) => [p.category, toPolicy(p)]));
      return registry.list().map((c) => ({
        name: c.name,
        description: c.description,
        table: getTableConfig(c.table).name,
        timeColumn: c.timeColumn.name,
        defaultRetainDays: c.defaultRetainDays,
        minRetainDays: floorOf(c),
        policy: policies.get(c.name) ?? null,
      }));
    },

    async create(tx: DbOrTx, input: CreatePolicy): Promise<Policy> {
      const c = categoryOf(input.category);
      const retainDays = input.retainDays ?? c.defaultRetainDays;
      checkFloor(c, retainDays);
      const [row] = await tx
        .insert(dataRetentionPolicies)
        .values({ category: c.name, retainDays, enabled: input.enabled ?? true })
        .returning()
        .catch(conflictOnUnique(`A retention policy for '${c.name}' already exists; change it with PATCH.`, { category: c.name }));
      return toPolicy(row!);
    },

    async list(f: PolicyFilter & { limit: number }): Promise<Page<Policy>> {
      const where: SQL[] = [];
      const afterId = decodeIdCursor(f.cursor);
      if (afterId !== undefined) where.push(gt(dataRetentionPolicies.id, afterId));
      if (f.enabled !== undefined) where.push(eq(dataRetentionPolicies.enabled, f.enabled));
      const rows = await db.select().from(dataRetentionPolicies).where(and(...where)).orderBy(asc(dataRetentionPolicies.id)).limit(f.limit + 1);
      return toPage(rows, f.limit, (r) => [r.id], toPolicy);
    },

    async get(category: string): Promise<Policy | undefined> {
      const row = await policyRow(db, category);
      return row && toPolicy(row);
    },

    async update(tx: DbOrTx, category: string, input: UpdatePolicy): Promise<{ before: Policy; after: Policy } | undefined> {
      const [locked] = await tx.select().from(dataRetentionPolicies).where(eq(dataRetentionPolicies.category, category)).for('update');
      if (!locked) return undefined;
      if (input.retainDays !== undefined) {
        // A policy whose category is no longer registered (its pack disabled) keeps its own value.
        const c = registry.get(category);
        if (c) checkFloor(c, input.retainDays);
      }
      const [row] = await tx
        .update(dataRetentionPolicies)
        .set({ ...(input.retainDays !== undefined && { retainDays: input.retainDays }), ...(input.enabled !== undefined && { enabled: input.enabled }), updatedAt: new Date() })
        .where(eq(dataRetentionPolicies.id, locked.id))
        .returning();
      return { before: toPolicy(locked), after: toPolicy(row!) };
    },

    async remove(tx: DbOrTx, category: string): Promise<Policy | undefined> {
      const [row] = await tx.delete(dataRetentionPolicies).where(eq(dataRetentionPolicies.category, category)).returning();
      return row && toPolicy(row);
    },

    /** Rows a purge at `cutoff` would delete now. */
    eligible: (c: RetentionCategory, cutoff: Date): Promise<number> => (c.countEligible ? c.countEligible(db, cutoff) : countRows(db, c, cutoff)),

    /**
     * Deletes rows older than `cutoff` in batches (each its own short transaction) until none are
     * left, the budget is used up or `signal` aborts.
     */
    async purge(c: RetentionCategory, cutoff: Date, o: PurgeOptions): Promise<PurgeOutcome> {
      const deadline = Date.now() + o.budgetMs;
      let purged = 0;
      let batches = 0;
      for (;;) {
        const n = c.purgeBatch ? await c.purgeBatch(db, cutoff, o.batchSize) : await deleteBatch(db, c, cutoff, o.batchSize);
        purged += n;
        if (n > 0) {
          batches++;
          o.onBatch?.(n);
        }
        if (n < o.batchSize) return { purged, batches, status: 'complete' };
        if (Date.now() >= deadline || o.signal?.aborted) return { purged, batches, status: 'partial' };
        if (o.pauseMs > 0) await sleep(o.pauseMs);
      }
    },

    /** Records a run's outcome in the policy row (inside `tx`, with its audit entry). */
    async recordRun(tx: DbOrTx, policyId: number, run: { at: Date; status: 'complete' | 'partial' | 'failed'; purged: number; error?: string | null }): Promise<Policy | undefined> {
      const [row] = await tx
        .update(dataRetentionPolicies)
        .set({
          lastRunAt: run.at,
          lastRunStatus: run.status,
          lastRunError: run.error ?? null,
          lastRunPurged: run.purged,
          rowsPurgedTotal: sql`${dataRetentionPolicies.rowsPurgedTotal} + ${run.purged}`,
          updatedAt: new Date(),
        })
        .where(eq(dataRetentionPolicies.id, policyId))
        .returning();
      return row && toPolicy(row);
    },

    /** Enabled policies, for the periodic job. */
    enabledPolicies: async (): Promise<PolicyRow[]> => db.select().from(dataRetentionPolicies).where(eq(dataRetentionPolicies.enabled, true)).orderBy(asc(dataRetentionPolicies.id)),

    /** Policies and rows purged, for the admin overview. */
    async figures(): Promise<{ policies: number; enabled: number; rowsPurgedTotal: number }> {
      const [row] = await db
        .select({ policies: sql<number>`count(*)::int`, enabled: sql<number>`count(*) filter (where ${dataRetentionPolicies.enabled})::int`, total: sql<string>`coalesce(sum(${dataRetentionPolicies.rowsPurgedTotal}), 0)::text` })
        .from(dataRetentionPolicies);
      return { policies: Number(row?.policies ?? 0), enabled: Number(row?.enabled ?? 0), rowsPurgedTotal: Number(row?.total ?? 0) };
    },
  };
}
export type RetentionService = ReturnType<typeof createRetentionService>;
