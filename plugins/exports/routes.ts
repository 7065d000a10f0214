import { createReadStream, type ReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { FastifyRequest } from 'fastify';
import { hasScope, type Scope } from '../../src/access.js';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { getTableConfig } from 'drizzle-orm/pg-core';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses, ProblemError } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import type { Exports } from './index.js';
import { EXPORT_JOB, exportFile, SNAPSHOT_DATASET } from './jobs.js';
import { Value } from '@sinclair/typebox/value';
import { diffSection, type SectionDiff, type SnapshotItem } from '../../src/snapshot.js';
import type { ProblemErrorItem } from '../../src/problem.js';
import { CreateExportBody, DatasetSchema, ExportQuery, ExportSchema, ImportQuery, ImportResultSchema, SnapshotDocument, StatusBody, type ImportResult } from './schemas.js';
import { toExport } from './service.js';

const TAGS = ['exports'];
const ROOT = '/system/exports';
const TARGET = 'export';
const CONTENT_TYPES = { ndjson: 'application/x-ndjson', csv: 'text/csv; charset=utf-8', json: 'application/json' } as const;

/** The file, streamed (serialisation skipped); documented as a binary string. */
const FileBody = Type.Unsafe<ReadStream>({ type: 'string', format: 'binary', description: 'NDJSON or CSV' });

const notFound = (id: number) => problemError('resource-not-found', `No export ${id}`);

/**
 * If-None-Match per RFC 9110 §13.1.2: `*` matches any current file; otherwise a comma-separated
 * list of entity tags compared weakly (a `W/` prefix is ignored on either side).
 */
export function noneMatchHits(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
  const want = opaque(etag);
  return header.split(',').some((tag) => tag.trim() === '*' || opaque(tag) === want);
}

/** The scope that reads `dataset` directly: its registration's `readScope`, `admin` for the snapshot or an undeclared one. */
export const datasetReadScope = (datasets: Exports['datasets'], dataset: string): Scope =>
  dataset === SNAPSHOT_DATASET ? 'admin' : (datasets.get(dataset)?.readScope ?? 'admin');

/** An export is a read of its dataset: the caller needs the dataset's own read scope as well (403 naming it). */
function requireDatasetScope(request: FastifyRequest, datasets: Exports['datasets'], dataset: string): void {
  const scope = datasetReadScope(datasets, dataset);
  if (!hasScope(request, scope)) {
    throw new ProblemError('forbidden', {
      detail: `Exporting the dataset '${dataset}' requires the scope '${scope}' (the scope that reads it), which this API key does not hold.`,
      extensions: { requiredScope: scope, dataset },
    });
  }
}

/**
 * Export jobs: create (queued), list, read, cancel, download. Exports read data; they are not
 * control-plane writes (no freeze), but creating and cancelling one are audited through
 * `app.writeThrough` (no in-memory state to refresh).
 */
export const exportRoutes =
  ({ service, datasets, dir, exporter }: Exports): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      `${ROOT}/datasets`,
      {
        config: { scope: 'exports:read' },
        schema: { tags: TAGS, summary: 'The datasets an export can name', response: { 200: Type.Object({ items: Type.Array(DatasetSchema) }), ...problemResponses(503) } },
      },
      async () => ({
        items: datasets.list().map((d) => ({ name: d.name, description: d.description, table: getTableConfig(d.table).name, timeColumn: d.timeColumn.name, readScope: datasetReadScope(datasets, d.name) })),
      }),
    );

    app.post(
      ROOT,
      {
        config: { scope: 'exports:write' },
        schema: {
          tags: TAGS,
          summary: 'Export a dataset (optionally a time range) as NDJSON or CSV: queued, then poll the Location',
          body: CreateExportBody,
          response: { 201: ExportSchema, ...problemResponses(400, 403, 415, 422, 503) },
        },
      },
      async (request, reply) => {
        const { dataset } = request.body;
        const snapshot = dataset === SNAPSHOT_DATASET;
        if (!snapshot && !datasets.get(dataset)) {
          throw new ProblemError('unprocessable', { detail: `Unknown dataset '${dataset}'; registered: ${[...datasets.list().map((d) => d.name), SNAPSHOT_DATASET].join(', ')}.`, extensions: { dataset } });
        }
        requireDatasetScope(request, datasets, dataset);
        const format = request.body.format ?? (snapshot ? 'json' : 'ndjson');
        if (snapshot !== (format === 'json') || (snapshot && (request.body.since || request.body.until))) {
          const message = snapshot ? 'a snapshot is one json document of the current state (no format other than json, no time range)' : 'json is the snapshot format; a dataset is ndjson or csv';
          throw new ProblemError('validation-failed', { detail: `#/format: ${message}`, errors: [{ in: 'body', pointer: '#/format', message }] });
        }
        const actor = request.actor;
        const created = await app.writeThrough(request, {}, async (tx) => {
          const job = await service.create(tx, { ...request.body, format }, actor ? `${actor.type}:${actor.id ?? ''}` : 'anonymous');
          await app.jobs.enqueue(EXPORT_JOB, { exportId: job.id }, { tx });
          return { result: job, audit: { operation: `${TARGET}.create`, targetType: TARGET, targetId: job.id, after: job } };
        });
        return reply.code(201).header('location', `${ROOT}/${created.id}`).send(created);
      },
    );

    app.get(
      ROOT,
      {
        config: { scope: 'exports:read' },
        schema: { tags: TAGS, summary: 'List exports, newest first', querystring: ExportQuery, response: { 200: PageOf(ExportSchema), ...problemResponses(400, 503) } },
      },
      async (request) => service.list({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${ROOT}/:id`,
      {
        config: { scope: 'exports:read' },
        schema: { tags: TAGS, summary: 'One export: status, progress (rows), size, SHA-256, expiry', params: IdParams, response: { 200: ExportSchema, ...problemResponses(400, 404, 503) } },
      },
      async (request) => {
        const row = await service.row(request.params.id);
        if (!row) throw notFound(request.params.id);
        return toExport(row);
      },
    );

    app.post(
      `${ROOT}/:id/status`,
      {
        config: { scope: 'exports:write' },
        schema: {
          tags: TAGS,
          summary: 'Cancel a queued or running export (a running one stops at its next batch and leaves no file)',
          params: IdParams,
          body: StatusBody,
          response: { 200: ExportSchema, ...problemResponses(400, 404, 409, 415, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const cancelled = await app.writeThrough(request, {}, async (tx) => {
          const changed = await service.cancel(tx, id);
          if (!changed) throw notFound(id);
          return { result: changed.after, audit: { operation: `${TARGET}.cancel`, targetType: TARGET, targetId: id, before: { status: changed.before.status }, after: { status: changed.after.status } } };
        });
        // A live runner stops at its next batch (its open handle outlives the unlink); a dead one's
        // partial file would otherwise stay. Other instances' dirs: their periodic sweep.
        await exporter.removeParts(id);
        return cancelled;
      },
    );

    app.get(
      `${ROOT}/:id/download`,
      {
        config: { scope: 'exports:read' },
        schema: {
          tags: TAGS,
          summary: "Download a succeeded export's file (streamed; `ETag` is its SHA-256, `If-None-Match` answers 304)",
          params: IdParams,
          response: { 200: FileBody, 304: Type.Null({ description: 'Not modified' }), ...problemResponses(400, 403, 404, 409, 503) },
        },
      },
      async (request, reply) => {
        const row = await service.row(request.params.id);
        if (!row) throw notFound(request.params.id);
        const view = toExport(row);
        if (row.status !== 'succeeded') throw problemError('conflict', `Export ${row.id} is ${row.status}; only a succeeded export can be downloaded.`, { currentStatus: row.status });
        requireDatasetScope(request, datasets, row.dataset);
        if (view.expired) throw problemError('resource-not-found', `Export ${row.id} expired at ${view.expiresAt}; its file was deleted.`);
        const path = exportFile(dir, row.id, row.format);
        // Checked before any header is set: a file this instance does not hold (EXPORT_DIR not shared,
        // a new volume, deleted by hand) is a 404 naming the cause, not a 500 with the file's ETag.
        const present = await stat(path).then((s) => s.isFile(), () => false);
        if (!present) {
          throw problemError('resource-not-found', `The file of export ${row.id} is not in this instance's EXPORT_DIR (EXPORT_DIR must be a volume shared by every instance); export it again.`, { reason: 'export-file-missing' });
        }
        const etag = `"${row.sha256}"`;
        reply.header('etag', etag).header('cache-control', 'private, no-cache');
        if (noneMatchHits(request.headers['if-none-match'], etag)) return reply.code(304).send(null);
        return reply
          .header('content-type', CONTENT_TYPES[row.format])
          .header('content-length', String(row.sizeBytes))
          .header('content-disposition', `attachment; filename="export-${row.id}-${row.dataset}.${row.format}"`)
          .send(createReadStream(path));
      },
    );
  };

/** Thrown at the end of a dry run's transaction so that nothing it wrote is kept. */
class DryRunRollback extends Error {}

/**
 * `POST /system/imports`: restores a snapshot document. Every section it carries is made equal to
 * its items (created, changed, removed) through the owning packs' own validated writes, all in
 * one transaction with one audit entry: it applies entirely or not at all. `?dryRun=true` runs the
 * same writes in a transaction it rolls back: the same report, or the same refusal, and nothing kept. A bulk control-plane write: `admin` only, refused during a freeze.
 * Each section's `apply` notifies its own state entry inside the import's transaction and reloads
 * it in `afterCommit` (the sections do not hand their entries out, so `refresh` stays empty here).
 */
export const importRoutes =
  ({ snapshots }: Exports): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/system/imports',
      {
        config: { scope: 'admin', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Restore a snapshot (the `snapshot` export): `?dryRun=true` shows the changes per section; apply is atomic and audited',
          querystring: ImportQuery,
          body: SnapshotDocument,
          response: { 200: ImportResultSchema, ...problemResponses(400, 409, 415, 422, 503) },
        },
      },
      async (request) => {
        const dryRun = request.query.dryRun === true;
        const plans: Array<{ name: string; diff: SectionDiff }> = [];
        const errors: ProblemErrorItem[] = [];
        for (const [name, items] of Object.entries(request.body.sections)) {
          const section = snapshots.get(name);
          if (!section) {
            throw new ProblemError('unprocessable', { detail: `Unknown snapshot section '${name}'; this instance has: ${snapshots.list().map((x) => x.name).join(', ')}.`, extensions: { section: name } });
          }
          const seen = new Set<string>();
          items.forEach((item, i) => {
            const first = Value.Errors(section.itemSchema, item).First();
            if (first) errors.push({ in: 'body', pointer: `#/sections/${name}/${i}${first.path}`, message: first.message });
            else {
              const key = section.keyOf(item);
              if (seen.has(key)) errors.push({ in: 'body', pointer: `#/sections/${name}/${i}`, message: `duplicate key '${key}'` });
              seen.add(key);
            }
          });
          if (errors.length === 0) plans.push({ name, diff: diffSection(section, await section.read(), items as SnapshotItem[]) });
        }
        if (errors.length) throw new ProblemError('validation-failed', { detail: errors.slice(0, 10).map((e) => `${e.pointer}: ${e.message}`).join('; '), errors: errors.slice(0, 50) });
        const result: ImportResult = {
          dryRun,
          sections: plans.map(({ name, diff }) => {
            const section = snapshots.get(name)!;
            return { name, create: diff.create.map(section.keyOf), update: diff.update.map(section.keyOf), remove: diff.remove, unchanged: diff.unchanged };
          }),
        };
        const actor = request.actor;
        const ctx = { actor: actor ? (actor.id ? `${actor.type}:${actor.id}` : actor.type) : 'anonymous', correlationId: request.id };
        if (dryRun) {
          // The same validated writes as the import, in a transaction that is always rolled back:
          // the preview can never accept what the import refuses (a section's refusal propagates as is).
          await app.db
            .transaction(async (tx) => {
              for (const { name, diff } of plans) await snapshots.get(name)!.apply(tx, diff, ctx);
              throw new DryRunRollback();
            })
            .catch((err: unknown) => {
              if (!(err instanceof DryRunRollback)) throw err;
            });
          return result;
        }
        await app.writeThrough(request, {}, async (tx) => {
          for (const { name, diff } of plans) await snapshots.get(name)!.apply(tx, diff, ctx);
          return { result: null, audit: { operation: 'snapshot.import', targetType: 'snapshot', targetId: request.body.createdAt, after: result } };
        });
        for (const { name } of plans) await snapshots.get(name)!.afterCommit?.();
        return result;
      },
    );
  };
