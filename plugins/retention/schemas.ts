import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';

export const MAX_RETAIN_DAYS = 36_500;

const Category = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z][a-z0-9_]*$', description: 'a registered category, e.g. `system_logs` (see GET /system/retention/categories)' });
const RetainDays = Type.Integer({ minimum: 1, maximum: MAX_RETAIN_DAYS, description: 'rows older than this many days are purged; at least the category floor' });

export const RUN_STATUSES = ['complete', 'partial', 'failed'] as const;

export const PolicySchema = Type.Object({
  id: Type.Integer(),
  category: Type.String(),
  retainDays: Type.Integer(),
  enabled: Type.Boolean(),
  lastRunAt: Type.Union([IsoDate(), Type.Null()]),
  lastRunStatus: Type.Union([Type.Union(RUN_STATUSES.map((s) => Type.Literal(s))), Type.Null()]),
  lastRunError: Type.Union([Type.String(), Type.Null()]),
  lastRunPurged: Type.Union([Type.Integer(), Type.Null()]),
  rowsPurgedTotal: Type.Integer(),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type Policy = Static<typeof PolicySchema>;

export const CategorySchema = Type.Object({
  name: Type.String(),
  description: Type.String(),
  table: Type.String(),
  timeColumn: Type.String(),
  defaultRetainDays: Type.Integer(),
  minRetainDays: Type.Integer({ description: 'the floor: a policy may not keep rows for less' }),
  policy: Type.Union([PolicySchema, Type.Null()]),
});
export type CategoryInfo = Static<typeof CategorySchema>;

export const CreatePolicyBody = StrictObject({
  category: Category,
  retainDays: Type.Optional(RetainDays),
  enabled: Type.Optional(Type.Boolean()),
});
export type CreatePolicy = Static<typeof CreatePolicyBody>;

export const UpdatePolicyBody = StrictObject({ retainDays: Type.Optional(RetainDays), enabled: Type.Optional(Type.Boolean()) }, { minProperties: 1 });
export type UpdatePolicy = Static<typeof UpdatePolicyBody>;

export const PolicyQuery = StrictObject({ ...PageQuerySchema.properties, enabled: Type.Optional(Type.Boolean()) });
export type PolicyFilter = Static<typeof PolicyQuery>;

export const CategoryParams = StrictObject({ category: Category });

export const RunQuery = StrictObject({
  dryRun: Type.Optional(Type.Boolean({ default: false, description: 'count what would go, delete nothing' })),
});

export const RunResultSchema = Type.Object({
  category: Type.String(),
  dryRun: Type.Boolean(),
  cutoff: IsoDate('rows older than this go'),
  retainDays: Type.Integer(),
  /** Dry run: rows that would go now. */
  eligible: Type.Union([Type.Integer(), Type.Null()]),
  purged: Type.Integer(),
  batches: Type.Integer(),
  status: Type.Union([Type.Literal('complete'), Type.Literal('partial'), Type.Literal('dry-run')], { description: '`partial`: the time budget ran out; the periodic job goes on' }),
  durationMs: Type.Integer(),
});
export type RunResult = Static<typeof RunResultSchema>;
