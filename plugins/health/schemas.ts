import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { Nullable, QueryTimestamp, StrictObject } from '../../src/schemas.js';

export const CheckSchema = Type.Object({
  name: Type.Union([Type.Literal('database'), Type.Literal('migrations'), Type.Literal('state-listener'), Type.Literal('draining'), Type.Literal('pressure')]),
  ok: Type.Boolean(),
  latencyMs: Type.Optional(Type.Number({ description: 'time the check took (database round trip)' })),
  message: Type.String(),
});
export type Check = Static<typeof CheckSchema>;

export const LiveSchema = Type.Object({ status: Type.Literal('ok') });

export const ReadyQuerySchema = StrictObject({
  // `?verbose` arrives as an empty string; a boolean schema would coerce it to false.
  verbose: Type.Optional(
    Type.Union([Type.Literal(''), Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], {
      description: 'list each check (`?verbose` or `?verbose=true`)',
    }),
  ),
});

export const ReadySchema = Type.Object({
  status: Type.Literal('ok'),
  checks: Type.Optional(Type.Array(CheckSchema)),
});

export const MetricsTextSchema = Type.String({ description: 'Prometheus text exposition format 0.0.4' });

export const HealthQuerySchema = StrictObject({});

export const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')], { description: '`degraded` when any component is not ok' }),
  version: Type.String(),
  instanceId: Type.String(),
  startedAt: Type.String({ format: 'date-time' }),
  uptimeSeconds: Type.Number(),
  driver: Type.Union([Type.Literal('pglite'), Type.Literal('postgres')]),
  draining: Type.Boolean(),
  components: Type.Object({
    database: Type.Object({ ok: Type.Boolean(), latencyMs: Type.Number(), message: Type.String() }),
    migrations: Type.Object({
      ok: Type.Boolean(),
      expected: Type.Union([Type.Integer(), Type.Null()]),
      applied: Type.Union([Type.Integer(), Type.Null()]),
      message: Type.String(),
    }),
    pressure: Type.Object({
      ok: Type.Boolean(),
      eventLoopDelayMs: Nullable(Type.Number({ description: 'mean event-loop delay over the last sample interval; null when the interval has no sample (the loop was blocked throughout)' })),
      heapUsedBytes: Type.Integer(),
      rssBytes: Type.Integer(),
    }),
    jobs: Type.Object({
      running: Type.Boolean(),
      queued: Type.Array(Type.String()),
      periodic: Type.Array(Type.String()),
    }),
    stateCache: Type.Object({
      entries: Type.Integer(),
      names: Type.Array(Type.String()),
      listener: Type.Object({
        state: Type.Union([Type.Literal('listening'), Type.Literal('lost'), Type.Literal('stopped')]),
        since: Type.String({ format: 'date-time' }),
        resubscribes: Type.Integer(),
        reason: Type.Union([Type.String(), Type.Null()]),
      }),
    }),
    batchWriters: Type.Object({
      pending: Type.Integer(),
      writers: Type.Array(Type.Object({ name: Type.String(), pending: Type.Integer() })),
    }),
  }),
  packs: Type.Array(Type.Object({ name: Type.String(), code: Type.String(), description: Type.String() })),
});
export type Health = Static<typeof HealthSchema>;

/** What a snapshot records; fields are optional in responses so rows from older versions still serialise. */
export const SnapshotFiguresSchema = Type.Object(
  {
    requests: Type.Optional(Type.Integer({ description: 'responses sent by the instance since it started' })),
    serverErrors: Type.Optional(Type.Integer({ description: '5xx responses since the instance started' })),
    rssBytes: Type.Optional(Type.Integer()),
    heapUsedBytes: Type.Optional(Type.Integer()),
    eventLoopDelayP99Ms: Type.Optional(Type.Number({ description: 'p99 event-loop delay since the previous snapshot' })),
    batchPending: Type.Optional(Type.Integer({ description: 'rows waiting in batching writers' })),
  },
  { additionalProperties: true },
);
export type SnapshotFigures = Required<Static<typeof SnapshotFiguresSchema>>;

export const SnapshotSchema = Type.Object({
  id: Type.Integer(),
  takenAt: Type.String({ format: 'date-time' }),
  instanceId: Type.String(),
  figures: SnapshotFiguresSchema,
});

export const SnapshotQuerySchema = StrictObject({
  ...PageQuerySchema.properties,
  instanceId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  since: Type.Optional(QueryTimestamp('only snapshots taken at or after this time')),
  until: Type.Optional(QueryTimestamp('only snapshots taken at or before this time')),
});

export const InfoSchema = Type.Object({
  name: Type.String(),
  version: Type.String(),
  instanceId: Type.String(),
  startedAt: Type.String({ format: 'date-time' }),
  uptimeSeconds: Type.Number(),
  driver: Type.Union([Type.Literal('pglite'), Type.Literal('postgres')]),
  packs: Type.Array(Type.Object({ name: Type.String(), code: Type.String(), description: Type.String() })),
});
