import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, QueryTimestamp, StrictObject } from '../../src/schemas.js';

const ActorType = Type.Union([Type.Literal('client'), Type.Literal('system'), Type.Literal('anonymous'), Type.Literal('bootstrap')]);
const Result = Type.Union([Type.Literal('success'), Type.Literal('failure')]);
const Nullable = <T extends ReturnType<typeof Type.String>>(s: T) => Type.Union([s, Type.Null()]);

export const OperationSchema = Type.Object({
  id: Type.Integer(),
  occurredAt: IsoDate(),
  actorType: Type.String(),
  actorId: Nullable(Type.String()),
  keyId: Nullable(Type.String()),
  operation: Type.String(),
  targetType: Type.String(),
  targetId: Nullable(Type.String()),
  reason: Nullable(Type.String()),
  before: Type.Unknown({ description: 'the target before the operation (null when it did not exist)' }),
  after: Type.Unknown({ description: 'the target after the operation (null when it was removed)' }),
  result: Type.String(),
  correlationId: Nullable(Type.String()),
  prevHash: Type.String({ description: 'hash of the previous entry (64 zeros for the first)' }),
  hash: Type.String({ description: 'SHA-256 over this entry and prevHash' }),
});
export type Operation = Static<typeof OperationSchema>;

const Text = (description: string) => Type.String({ minLength: 1, maxLength: 200, description });

export const OperationQuery = StrictObject({
  ...PageQuerySchema.properties,
  actorId: Type.Optional(Text('client id (or system component) that acted')),
  actorType: Type.Optional(ActorType),
  keyId: Type.Optional(Text('public id of the API key used')),
  operation: Type.Optional(Text('exact operation, e.g. `feature-flag.update`')),
  operationPrefix: Type.Optional(Text('operations starting with this, e.g. `feature-flag.`')),
  targetType: Type.Optional(Text('kind of target, e.g. `flag`')),
  targetId: Type.Optional(Text('target id')),
  result: Type.Optional(Result),
  correlationId: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'the X-Request-ID of the request that made the change' })),
  since: Type.Optional(QueryTimestamp('entries at or after this time')),
  until: Type.Optional(QueryTimestamp('entries at or before this time')),
});
export type OperationFilter = Static<typeof OperationQuery>;

export const ChainVerificationSchema = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer({ description: 'entries verified before the first broken one (all of them when ok)' }),
  firstBrokenId: Type.Union([Type.Integer(), Type.Null()]),
  reason: Type.Union([Type.Literal('hash-mismatch'), Type.Literal('link-mismatch'), Type.Null()], {
    description: '`hash-mismatch`: the entry was edited; `link-mismatch`: the entry before it was deleted, inserted or edited',
  }),
  detail: Type.String(),
});
export type ChainVerificationReport = Static<typeof ChainVerificationSchema>;

export const OverviewSchema = Type.Object({
  instance: Type.Object({
    id: Type.String(),
    version: Type.String(),
    startedAt: IsoDate(),
    uptimeSeconds: Type.Integer(),
    draining: Type.Boolean(),
    driver: Type.String(),
  }),
  sections: Type.Record(Type.String(), Type.Unknown(), {
    description: "each pack's figures (maintenance: mode and freeze; jobs: backlog; errors: last hour; ...); a failing section reads `{ error }`",
  }),
  recentOperations: Type.Optional(Type.Array(OperationSchema, { description: 'the 10 most recent admin operations, newest first; only for callers holding `audit:read`' })),
});
export type Overview = Static<typeof OverviewSchema>;

export const FiguresQuery = StrictObject({
  minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 60, default: 60, description: 'how much history to return (at most the last hour)' })),
});

const Counts = (description: string) => Type.Array(Type.Number(), { description });

export const FiguresSchema = Type.Object({
  instanceId: Type.String({ description: 'the instance that answered: every instance keeps its own figures' }),
  bucketSeconds: Type.Integer(),
  series: Type.Object(
    {
      t: Counts('start of each bucket, Unix seconds, oldest first; the last is the bucket in progress'),
      requests: Counts('responses'),
      rps: Counts('responses per second'),
      p99Ms: Type.Array(Type.Union([Type.Number(), Type.Null()]), { description: 'p99 response time in ms (upper edge of a log-scale bin, at most 20 % high); null without requests' }),
      status4xx: Counts('4xx responses'),
      status5xx: Counts('5xx responses'),
      blocked: Counts('refused by the blocklist (403 blocked)'),
      shieldRefused: Counts('refused by the read-only shield (503 read-only or maintenance)'),
      rateLimited: Counts('refused by a rate limit (429)'),
    },
    { description: 'one entry per bucket in each list' },
  ),
  recent: Type.Object(
    {
      seconds: Type.Integer(),
      requests: Type.Number(),
      status4xx: Type.Number(),
      status5xx: Type.Number(),
      blocked: Type.Number(),
      shieldRefused: Type.Number(),
      rateLimited: Type.Number(),
      errorRate: Type.Number({ description: "5xx among all responses, 0 to 1, not counting the read-only shield's refusals" }),
      p99Ms: Type.Union([Type.Number(), Type.Null()]),
    },
    { description: 'totals over the last five minutes' },
  ),
});
export type Figures = Static<typeof FiguresSchema>;
