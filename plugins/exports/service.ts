import { and, desc, eq, inArray, isNull, lt, sql, type SQL } from 'drizzle-orm';
import type { Db, DbOrTx } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { ProblemError } from '../../src/problem.js';
import type { CreateExport, Export, ExportFilter } from './schemas.js';
import { exportJobs, type ExportStatus } from './table.js';

export type ExportRow = typeof exportJobs.$inferSelect;

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export const toExport = (row: ExportRow, now = Date.now()): Export => {
  const expired = row.fileDeletedAt !== null || (row.expiresAt !== null && row.expiresAt.getTime() <= now);
  return {
    id: row.id,
    dataset: row.dataset,
    format: row.format,
    filters: row.filters,
    status: row.status,
    rowsExported: row.rowsExported,
    sizeBytes: row.sizeBytes,
    sha256: row.sha256,
    error: row.error,
    requestedBy: row.requestedBy,
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    expiresAt: iso(row.expiresAt),
    expired,
    downloadUrl: row.status === 'succeeded' && !expired ? `/system/exports/${row.id}/download` : null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
};

/** Export jobs without HTTP or files: writes take the caller's transaction. */
export function createExportService({ db }: { db: Db }) {
  return {
    async create(tx: DbOrTx, input: CreateExport & { dataset: string }, requestedBy: string): Promise<Export> {
      if (input.since && input.until && Date.parse(input.since) >= Date.parse(input.until)) {
        throw new ProblemError('validation-failed', { detail: '#/until: must be after since', errors: [{ in: 'body', pointer: '#/until', message: 'must be after since' }] });
      }
      const filters = { ...(input.since && { since: new Date(input.since).toISOString() }), ...(input.until && { until: new Date(input.until).toISOString() }) };
      const [row] = await tx.insert(exportJobs).values({ dataset: input.dataset, format: input.format ?? 'ndjson', filters, requestedBy }).returning();
      return toExport(row!);
    },

    async list(f: ExportFilter & { limit: number }): Promise<Page<Export>> {
      const where: SQL[] = [];
      const beforeId = decodeIdCursor(f.cursor);
      if (beforeId !== undefined) where.push(lt(exportJobs.id, beforeId));
      if (f.status) where.push(eq(exportJobs.status, f.status));
      if (f.dataset) where.push(eq(exportJobs.dataset, f.dataset));
      const rows = await db.select().from(exportJobs).where(and(...where)).orderBy(desc(exportJobs.id)).limit(f.limit + 1);
      const now = Date.now();
      return toPage(rows, f.limit, (r) => [r.id], (r) => toExport(r, now));
    },

    row: async (id: number): Promise<ExportRow | undefined> => (await db.select().from(exportJobs).where(eq(exportJobs.id, id)).limit(1))[0],

    /** Queued or running → cancelled; anything else is a 409 naming the current status. */
    async cancel(tx: DbOrTx, id: number): Promise<{ before: Export; after: Export } | undefined> {
      const [row] = await tx.select().from(exportJobs).where(eq(exportJobs.id, id)).for('update');
      if (!row) return undefined;
      if (row.status !== 'queued' && row.status !== 'running') {
        throw new ProblemError('conflict', { detail: `Export ${id} is ${row.status}; only a queued or running export can be cancelled.`, extensions: { currentStatus: row.status } });
      }
      const [after] = await tx.update(exportJobs).set({ status: 'cancelled', finishedAt: new Date(), updatedAt: new Date() }).where(eq(exportJobs.id, id)).returning();
      return { before: toExport(row), after: toExport(after!) };
    },

    /** queued → running, for the job that runs it; undefined when cancelled meanwhile or already taken. */
    async start(id: number): Promise<ExportRow | undefined> {
      const [row] = await db
        .update(exportJobs)
        .set({ status: 'running', startedAt: new Date(), updatedAt: new Date(), rowsExported: 0 })
        .where(and(eq(exportJobs.id, id), inArray(exportJobs.status, ['queued', 'running'])))
        .returning();
      return row;
    },

    /** running → queued again (an export interrupted by shutdown starts over from the first row). */
    async requeue(id: number, run?: Date | null): Promise<void> {
      await db
        .update(exportJobs)
        .set({ status: 'queued', startedAt: null, rowsExported: 0, updatedAt: new Date() })
        .where(and(eq(exportJobs.id, id), eq(exportJobs.status, 'running'), ...(run ? [eq(exportJobs.startedAt, run)] : [])));
    },

    /** queued or running → failed (its job was given up); the row when it changed. */
    async fail(id: number, error: string): Promise<ExportRow | undefined> {
      const now = new Date();
      const [row] = await db
        .update(exportJobs)
        .set({ status: 'failed', error: error.slice(0, 500), finishedAt: now, updatedAt: now })
        .where(and(eq(exportJobs.id, id), inArray(exportJobs.status, ['queued', 'running'])))
        .returning();
      return row;
    },

    /**
     * Progress of the run that started at `run` (its fencing token: `startedAt`, set anew by every
     * start). Returns the current status so the job stops when it was cancelled, or `superseded`
     * when another runner took the export over (this one's lease ran out while it was frozen).
     */
    async progress(id: number, rows: number, run?: Date | null): Promise<ExportStatus | 'superseded' | undefined> {
      const [row] = await db
        .update(exportJobs)
        .set({ rowsExported: rows, updatedAt: new Date() })
        .where(and(eq(exportJobs.id, id), eq(exportJobs.status, 'running'), ...(run ? [eq(exportJobs.startedAt, run)] : [])))
        .returning({ status: exportJobs.status });
      if (row) return row.status;
      const now = (await db.select({ status: exportJobs.status, startedAt: exportJobs.startedAt }).from(exportJobs).where(eq(exportJobs.id, id)))[0];
      // Started again since (a takeover, whatever it has reached): this run's file and outcome are not its own any more.
      if (run && now && now.startedAt?.getTime() !== run.getTime() && now.status !== 'queued') return 'superseded';
      return now?.status;
    },

    /** running → succeeded or failed, for the run started at `run`; false when it was cancelled or taken over meanwhile. */
    async finish(id: number, outcome: { status: 'succeeded'; rows: number; sizeBytes: number; sha256: string; expiresAt: Date } | { status: 'failed'; error: string; rows: number }, run?: Date | null): Promise<boolean> {
      const now = new Date();
      const [row] = await db
        .update(exportJobs)
        .set(
          outcome.status === 'succeeded'
            ? { status: 'succeeded', rowsExported: outcome.rows, sizeBytes: outcome.sizeBytes, sha256: outcome.sha256, expiresAt: outcome.expiresAt, finishedAt: now, updatedAt: now, error: null }
            : { status: 'failed', rowsExported: outcome.rows, error: outcome.error, finishedAt: now, updatedAt: now },
        )
        .where(and(eq(exportJobs.id, id), eq(exportJobs.status, 'running'), ...(run ? [eq(exportJobs.startedAt, run)] : [])))
        .returning({ id: exportJobs.id });
      return row !== undefined;
    },

    /** Succeeded exports past their expiry whose file is still there. */
    expiredFiles: async (now = new Date()): Promise<ExportRow[]> =>
      db.select().from(exportJobs).where(and(eq(exportJobs.status, 'succeeded'), lt(exportJobs.expiresAt, now), isNull(exportJobs.fileDeletedAt))).limit(500),

    markFileDeleted: async (id: number): Promise<void> => {
      await db.update(exportJobs).set({ fileDeletedAt: new Date(), updatedAt: new Date() }).where(eq(exportJobs.id, id));
    },

    async figures(): Promise<Record<string, number>> {
      const rows = await db.select({ status: exportJobs.status, n: sql<number>`count(*)::int` }).from(exportJobs).groupBy(exportJobs.status);
      return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
    },
  };
}
export type ExportService = ReturnType<typeof createExportService>;
