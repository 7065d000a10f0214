import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { and, asc, getTableColumns, gt, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import type { RetentionRegistry } from '../../src/retention.js';
import type { SnapshotItem, SnapshotRegistry } from '../../src/snapshot.js';
import { boundHeapGrowth } from '../../src/heap-growth.js';
import { safeMessage } from '../../src/secrets.js';
import { JobInterrupted } from '../../src/jobs/runner.js';
import { csvLine, ndjsonLine, type Row } from './formats.js';
import { SNAPSHOT_KIND } from './schemas.js';
import type { ExportService } from './service.js';
import type { ExportFormat } from './table.js';

export const EXPORT_JOB = 'exports:run';
export const EXPIRE_JOB = 'exports:expire';
/** The dataset that is not a table: the control-plane state as one JSON document. */
export const SNAPSHOT_DATASET = 'snapshot';

/**
 * The `exports:run` lease. Renewed by a heartbeat while the export runs, so it can be short: a
 * runner that died (SIGKILL, OOM, power loss) is taken over within this time, not after an hour.
 */
export const EXPORT_LEASE_MS = 120_000;

const FORMATS: readonly ExportFormat[] = ['ndjson', 'csv', 'json'];
const PART = /^export-(\d+)\.(ndjson|csv|json)\.part$/;

/** Where a finished export lives; `.part` while it is written, renamed only once complete. */
export const exportFile = (dir: string, id: number, format: ExportFormat): string => join(dir, `export-${id}.${format}`);

/** The little of a file handle the exporter uses (a seam: tests give one that fills the disk). */
export interface ExportSink {
  write(data: Buffer): Promise<unknown>;
  close(): Promise<void>;
}
export type OpenSink = (path: string) => Promise<ExportSink>;

const openExclusive: OpenSink = async (path) => {
  const handle = await open(path, 'wx');
  return { write: (data) => handle.write(data), close: () => handle.close() };
};

/** A file-system error as one sentence for the export row (no stack). */
export function describeFileError(err: unknown, dir: string): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return `disk full while writing the export under EXPORT_DIR (${dir}); the partial file was removed`;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOTDIR' || code === 'ENOENT' || code === 'EEXIST') {
    return `EXPORT_DIR (${dir}) is not writable (${code}); nothing was written`;
  }
  return safeMessage(err).slice(0, 500);
}

export interface ExporterDeps {
  service: ExportService;
  db: Db;
  datasets: Pick<RetentionRegistry, 'get'>;
  snapshots: Pick<SnapshotRegistry, 'list'>;
  dir: string;
  ttlMs: number;
  batchSize: number;
  /** V8 old-space growth bound while rows stream (`EXPORT_HEAP_GROWING_PERCENT`; 0 = none). */
  heapGrowingPercent?: number;
  log: FastifyBaseLogger;
  openSink?: OpenSink;
  /** Told about every finished export (metrics, the `export.finished` notification); awaited, its errors logged. */
  onFinished?: (finished: { id: number; dataset: string; status: 'succeeded' | 'failed' | 'cancelled'; rows: number; error: string | null }) => void | Promise<void>;
}

export interface Exporter {
  /** Runs export `id` if it is queued: streams the rows, batch by batch, to its file. Throws only when `signal` interrupted it (it is queued again). */
  run(id: number, signal?: AbortSignal): Promise<void>;
  /**
   * Deletes the files of expired exports, and the `.part` files of exports no longer queued or
   * running that are older than the lease (left by a runner that died); returns how many files went.
   */
  expire(): Promise<number>;
  /** Removes export `id`'s partial files from this instance's EXPORT_DIR (cancel, failure, takeover). */
  removeParts(id: number): Promise<void>;
  /** Its job was given up (dead): a still queued or running export is failed with `error` and its partial file removed. */
  giveUp(id: number, error: string): Promise<void>;
}

export function createExporter(deps: ExporterDeps): Exporter {
  const { service, db, dir, log } = deps;
  const openSink = deps.openSink ?? openExclusive;
  const removeQuietly = (path: string) => unlink(path).catch(() => {});
  const removeParts = async (id: number) => {
    for (const format of FORMATS) await removeQuietly(`${exportFile(dir, id, format)}.part`);
  };
  const finished = async (f: Parameters<NonNullable<ExporterDeps['onFinished']>>[0]): Promise<void> => {
    try {
      await deps.onFinished?.(f);
    } catch (err) {
      log.warn({ exportId: f.id, err: { message: safeMessage(err) } }, 'an export-finished listener failed');
    }
  };

  /** The snapshot: every registered section read now, written as one document (control-plane state is small). */
  async function writeSnapshot(id: number, format: ExportFormat, run: Date | null): Promise<void> {
    const final = exportFile(dir, id, format);
    const part = `${final}.part`;
    let items = 0;
    try {
      const sections: Record<string, SnapshotItem[]> = {};
      for (const section of deps.snapshots.list()) {
        sections[section.name] = await section.read();
        items += sections[section.name]!.length;
      }
      const data = Buffer.from(`${JSON.stringify({ kind: SNAPSHOT_KIND, version: 1, createdAt: new Date().toISOString(), sections }, null, 2)}\n`, 'utf8');
      await mkdir(dir, { recursive: true });
      await removeQuietly(part);
      const sink = await openSink(part);
      try {
        await sink.write(data);
      } finally {
        await sink.close();
      }
      await rename(part, final);
      const sha256 = createHash('sha256').update(data).digest('hex');
      if (!(await service.finish(id, { status: 'succeeded', rows: items, sizeBytes: data.length, sha256, expiresAt: new Date(Date.now() + deps.ttlMs) }, run))) {
        await removeQuietly(final);
        return finished({ id, dataset: SNAPSHOT_DATASET, status: 'cancelled', rows: items, error: null });
      }
      await finished({ id, dataset: SNAPSHOT_DATASET, status: 'succeeded', rows: items, error: null });
    } catch (err) {
      await removeQuietly(part);
      const error = describeFileError(err, dir);
      if (await service.finish(id, { status: 'failed', rows: 0, error }, run)) await finished({ id, dataset: SNAPSHOT_DATASET, status: 'failed', rows: 0, error });
    }
  }

  return {
    async run(id, signal) {
      const job = await service.start(id);
      // Cancelled (or finished) meanwhile: a runner that died may have left a partial file here.
      if (!job) return removeParts(id);
      if (job.dataset === SNAPSHOT_DATASET) return writeSnapshot(id, job.format, job.startedAt);
      const dataset = deps.datasets.get(job.dataset);
      if (!dataset) {
        const error = `dataset '${job.dataset}' is not registered on this instance (its pack is disabled)`;
        await service.finish(id, { status: 'failed', rows: 0, error });
        return finished({ id, dataset: job.dataset, status: 'failed', rows: 0, error });
      }
      const final = exportFile(dir, id, job.format);
      const part = `${final}.part`;
      // Rows come back keyed by the table's property names (camelCase), the same on both drivers.
      const properties = getTableColumns(dataset.table);
      const idKey = Object.entries(properties).find(([, c]) => c === dataset.idColumn)?.[0] ?? 'id';
      // Timestamp columns mapped as strings come back in PostgreSQL's text form
      // (`2026-11-29 21:59:10.513+00`); every dataset writes ISO 8601 UTC, so they are converted.
      const textTimestamps = Object.entries(properties)
        .filter(([, c]) => c.columnType === 'PgTimestampString')
        .map(([key]) => key);
      const normalise = (row: Row): Row => {
        for (const key of textTimestamps) {
          const v = row[key];
          if (typeof v === 'string') row[key] = new Date(v).toISOString();
        }
        return row;
      };
      const hash = createHash('sha256');
      let size = 0;
      let rows = 0;
      let sink: ExportSink | undefined;
      const write = async (text: string) => {
        const data = Buffer.from(text, 'utf8');
        hash.update(data);
        size += data.length;
        await sink!.write(data);
      };
      // Rows are short-lived but arrive fast enough that V8 promotes some; without a bound it lets
      // that garbage reach up to 4x the live heap before collecting it (src/heap-growth.ts).
      const releaseHeapBound = boundHeapGrowth(deps.heapGrowingPercent ?? 0);
      try {
        await mkdir(dir, { recursive: true });
        await removeQuietly(part); // a run that died before may have left one
        sink = await openSink(part);
        const where: SQL[] = [];
        // Bound as text and cast: a time column may be mapped as a Date or as a string.
        if (job.filters.since) where.push(sql`${dataset.timeColumn} >= ${job.filters.since}::timestamptz`);
        if (job.filters.until) where.push(sql`${dataset.timeColumn} < ${job.filters.until}::timestamptz`);
        let header: string[] | null = null;
        let lastId: unknown = null;
        // Keyset batches by id: memory holds one batch, whatever the table's size.
        for (;;) {
          if (signal?.aborted) throw new Error('interrupted by shutdown');
          const selected: Row[] = await db
            .select()
            .from(dataset.table)
            .where(and(...where, ...(lastId === null ? [] : [gt(dataset.idColumn, lastId)])))
            .orderBy(asc(dataset.idColumn))
            .limit(deps.batchSize);
          const batch = textTimestamps.length ? selected.map(normalise) : selected;
          if (batch.length === 0) break;
          if (job.format === 'csv' && header === null) {
            header = Object.keys(batch[0]!);
            await write(csvLine(header));
          }
          const keys = header;
          await write(batch.map((r) => (job.format === 'csv' ? csvLine(keys!.map((k) => r[k])) : ndjsonLine(r))).join(''));
          rows += batch.length;
          lastId = batch[batch.length - 1]![idKey];
          const now = await service.progress(id, rows, job.startedAt);
          if (now === 'superseded') {
            // Another runner took the export over (this one froze past its lease): the part file
            // and the outcome are that runner's now; stop without touching either.
            await sink.close();
            sink = undefined;
            log.warn({ exportId: id, rows }, 'export taken over by another runner; this run stops');
            return;
          }
          if (now !== 'running') {
            await sink.close();
            sink = undefined;
            await removeQuietly(part);
            log.info({ exportId: id, rows }, 'export cancelled; partial file removed');
            return finished({ id, dataset: job.dataset, status: 'cancelled', rows, error: null });
          }
          if (batch.length < deps.batchSize) break;
        }
        if (job.format === 'csv' && header === null) await write(csvLine(Object.keys(properties)));
        await sink.close();
        sink = undefined;
        await rename(part, final);
        const kept = await service.finish(id, { status: 'succeeded', rows, sizeBytes: size, sha256: hash.digest('hex'), expiresAt: new Date(Date.now() + deps.ttlMs) }, job.startedAt);
        if (!kept) {
          const now = await service.row(id);
          if (now && now.startedAt?.getTime() !== job.startedAt?.getTime()) return; // taken over: the file is the other run's
          await removeQuietly(final);
          return finished({ id, dataset: job.dataset, status: 'cancelled', rows, error: null });
        }
        await finished({ id, dataset: job.dataset, status: 'succeeded', rows, error: null });
      } catch (err) {
        await sink?.close().catch(() => {});
        await removeQuietly(part);
        if (signal?.aborted) {
          // Shutdown, not a failure: queued again, and the job fails so the runner retries it (here or elsewhere).
          await service.requeue(id, job.startedAt);
          log.info({ exportId: id, rows }, 'export interrupted by shutdown; queued again');
          throw new JobInterrupted();
        }
        const error = describeFileError(err, dir);
        log.warn({ exportId: id, err: { message: error } }, 'export failed');
        if (await service.finish(id, { status: 'failed', rows, error }, job.startedAt)) await finished({ id, dataset: job.dataset, status: 'failed', rows, error });
      } finally {
        releaseHeapBound();
      }
    },

    async expire() {
      let removed = 0;
      for (const row of await service.expiredFiles()) {
        // EXPORT_DIR is shared by every instance: a file already gone (ENOENT) counts as deleted;
        // any other error leaves the row for the next run.
        const outcome = await unlink(exportFile(dir, row.id, row.format)).then(
          () => 'deleted' as const,
          (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? ('gone' as const) : err),
        );
        if (outcome instanceof Error) {
          log.warn({ exportId: row.id, err: { message: safeMessage(outcome) } }, 'could not delete an expired export file; retried at the next run');
          continue;
        }
        await service.markFileDeleted(row.id);
        if (outcome === 'deleted') removed++;
      }
      // Orphaned partial files: their export is not running any more and they are older than the lease.
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        const m = PART.exec(name);
        if (!m) continue;
        const path = join(dir, name);
        const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => -1);
        if (age < EXPORT_LEASE_MS) continue;
        const row = await service.row(Number(m[1]));
        if (row && (row.status === 'queued' || row.status === 'running')) continue; // the takeover removes it
        await removeQuietly(path);
        removed++;
      }
      return removed;
    },

    removeParts,

    async giveUp(id, error) {
      const row = await service.fail(id, error);
      await removeParts(id);
      if (row) await finished({ id, dataset: row.dataset, status: 'failed', rows: row.rowsExported, error });
    },
  };
}
