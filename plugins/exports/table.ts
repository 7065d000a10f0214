import { sql } from 'drizzle-orm';
import { bigint, check, index, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

export const EXPORT_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type ExportStatus = (typeof EXPORT_STATUSES)[number];
/** `json` is the snapshot's one document; datasets are `ndjson` or `csv`. */
export const EXPORT_FORMATS = ['ndjson', 'csv', 'json'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportFilters {
  since?: string;
  until?: string;
}

/**
 * Export jobs: one dataset, its filters and a format, streamed by a queued job to a file under
 * EXPORT_DIR. `queued → running → succeeded | failed | cancelled`; the file is deleted at
 * `expires_at` by the expiry job (`file_deleted_at`).
 */
export const exportJobs = pgTable(
  'export_jobs',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    dataset: text('dataset').notNull(),
    format: text('format', { enum: EXPORT_FORMATS }).notNull(),
    filters: jsonb('filters').$type<ExportFilters>().notNull(),
    status: text('status', { enum: EXPORT_STATUSES }).notNull().default('queued'),
    rowsExported: bigint('rows_exported', { mode: 'number' }).notNull().default(0),
    sizeBytes: bigint('size_bytes', { mode: 'number' }),
    sha256: text('sha256'),
    error: text('error'),
    requestedBy: text('requested_by').notNull(),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
    fileDeletedAt: timestamp('file_deleted_at', { withTimezone: true, mode: 'date' }),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    index('export_jobs_status_idx').on(t.status, t.id),
    index('export_jobs_dataset_idx').on(t.dataset, t.id),
    index('export_jobs_expires_idx').on(t.expiresAt),
    // The time column of the export_jobs retention category and dataset.
    index('export_jobs_created_idx').on(t.createdAt, t.id),
    check('export_jobs_status_check', sql`${t.status} in ('queued', 'running', 'succeeded', 'failed', 'cancelled')`),
    check('export_jobs_format_check', sql`${t.format} in ('ndjson', 'csv', 'json')`),
  ],
);
