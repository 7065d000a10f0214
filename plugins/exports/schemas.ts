import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';
import { EXPORT_FORMATS, EXPORT_STATUSES } from './table.js';

const Status = Type.Union(EXPORT_STATUSES.map((s) => Type.Literal(s)));
const Format = Type.Union(EXPORT_FORMATS.map((f) => Type.Literal(f)));
const Dataset = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z][a-z0-9_]*$', description: 'a registered dataset, e.g. `system_logs` (GET /system/exports/datasets), or `snapshot`: the control-plane state as one JSON document' });

export const ExportSchema = Type.Object({
  id: Type.Integer(),
  dataset: Type.String(),
  format: Format,
  filters: Type.Object({ since: Type.Optional(IsoDate()), until: Type.Optional(IsoDate()) }),
  status: Status,
  rowsExported: Type.Integer({ description: 'progress while running, the total once succeeded' }),
  sizeBytes: Type.Union([Type.Integer(), Type.Null()]),
  sha256: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  requestedBy: Type.String(),
  startedAt: Type.Union([IsoDate(), Type.Null()]),
  finishedAt: Type.Union([IsoDate(), Type.Null()]),
  expiresAt: Type.Union([IsoDate(), Type.Null()]),
  expired: Type.Boolean({ description: 'the file was deleted at expiresAt' }),
  downloadUrl: Type.Union([Type.String(), Type.Null()]),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type Export = Static<typeof ExportSchema>;

export const CreateExportBody = StrictObject({
  dataset: Dataset,
  format: Type.Optional(Type.Union(EXPORT_FORMATS.map((f) => Type.Literal(f)), { description: '`ndjson` (default) or `csv` for a dataset; `json` (default) for `snapshot`' })),
  since: Type.Optional(Type.String({ format: 'date-time', maxLength: 40, description: 'rows at or after this time' })),
  until: Type.Optional(Type.String({ format: 'date-time', maxLength: 40, description: 'rows before this time' })),
});
export type CreateExport = Static<typeof CreateExportBody>;

export const ExportQuery = StrictObject({ ...PageQuerySchema.properties, status: Type.Optional(Status), dataset: Type.Optional(Dataset) });
export type ExportFilter = Static<typeof ExportQuery>;

export const StatusBody = StrictObject({ status: Type.Literal('cancelled', { description: 'the only transition a client asks for; the job makes the others' }) });

export const DatasetSchema = Type.Object({
  name: Type.String(),
  description: Type.String(),
  table: Type.String(),
  timeColumn: Type.String(),
  readScope: Type.String({ description: 'The scope an export of this dataset needs besides `exports:*` (the scope that reads it directly)' }),
});

export const SNAPSHOT_KIND = 'valhalla-snapshot';

/** The snapshot document: what a `snapshot` export writes and `POST /system/imports` takes. */
export const SnapshotDocument = StrictObject({
  kind: Type.Literal(SNAPSHOT_KIND),
  version: Type.Literal(1),
  createdAt: Type.String({ format: 'date-time', maxLength: 40 }),
  sections: Type.Record(
    Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$' }),
    Type.Array(Type.Record(Type.String({ maxLength: 200 }), Type.Unknown()), { maxItems: 10_000 }),
    { description: 'per section, every item; a section left out is not touched, a section given is made equal to its items' },
  ),
});
export type SnapshotDocumentBody = Static<typeof SnapshotDocument>;

export const ImportQuery = StrictObject({ dryRun: Type.Optional(Type.Boolean({ default: false, description: 'report the changes, write nothing' })) });

export const ImportResultSchema = Type.Object({
  dryRun: Type.Boolean(),
  sections: Type.Array(
    Type.Object({
      name: Type.String(),
      create: Type.Array(Type.String()),
      update: Type.Array(Type.String()),
      remove: Type.Array(Type.String()),
      unchanged: Type.Integer(),
    }),
  ),
});
export type ImportResult = Static<typeof ImportResultSchema>;
