import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';
import { SMOKE_RUN_STATUSES } from './table.js';
import { SMOKE_METHODS } from './smoke-runner.js';

// Bodies and query strings are StrictObject (unknown fields are a 400 naming the field).

export const MAX_CHECKS = 20;
export const MAX_CONCURRENCY = 10;
export const MAX_TIMEOUT_MS = 30_000;

const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'letters, digits, `.`, `_`, `-`' });
const Environment = Type.String({ minLength: 1, maxLength: 50, pattern: '^[a-z0-9][a-z0-9._-]*$', description: 'e.g. `production`, `staging`' });
const BaseUrl = Type.String({
  minLength: 8,
  maxLength: 2048,
  pattern: '^[Hh][Tt][Tt][Pp][Ss]?://',
  description: 'http or https origin and optional path prefix; no credentials, query or fragment',
});
const Version = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]*$', description: 'e.g. `1.4.2`, `2024.06.01-3`' });
const CommitSha = Type.String({ minLength: 7, maxLength: 40, pattern: '^[0-9a-fA-F]{7,40}$', description: 'abbreviated or full git commit hash (stored lower-case)' });
const Method = Type.Union(SMOKE_METHODS.map((m) => Type.Literal(m)));

export const SmokeCheckBody = StrictObject({
  name: Name,
  method: Type.Optional(Type.Union(SMOKE_METHODS.map((m) => Type.Literal(m)), { default: 'GET' })),
  path: Type.String({ minLength: 1, maxLength: 1024, pattern: '^/[!-~]*$', description: 'starts with `/`, printable ASCII, query string allowed; appended to the base URL' }),
  expectedStatus: Type.Optional(Type.Integer({ minimum: 100, maximum: 599, default: 200 })),
  bodyContains: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: 'substring the first 64 KiB of the body must contain (not with HEAD)' })),
  maxLatencyMs: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TIMEOUT_MS, default: 1000, description: 'slower answers fail; at most timeoutMs' })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 50, maximum: MAX_TIMEOUT_MS, default: 5000, description: 'the request is abandoned after this' })),
});
export type SmokeCheckInput = Static<typeof SmokeCheckBody>;

export const SmokeCheckSchema = Type.Object({
  name: Type.String(),
  method: Method,
  path: Type.String(),
  expectedStatus: Type.Integer(),
  bodyContains: Type.Optional(Type.String()),
  maxLatencyMs: Type.Integer(),
  timeoutMs: Type.Integer(),
});

const Checks = Type.Array(SmokeCheckBody, { minItems: 1, maxItems: MAX_CHECKS, description: `1 to ${MAX_CHECKS} checks, names unique within the profile` });
// No schema `default` here: Ajv would fill it into a PATCH body and reset the value.
const Concurrency = Type.Integer({ minimum: 1, maximum: MAX_CONCURRENCY, description: 'checks of a run in flight at once (4 when not given)' });

export const ProfileSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  environment: Type.String(),
  baseUrl: Type.String(),
  currentVersion: Type.Union([Type.String(), Type.Null()]),
  lastDeployedAt: Type.Union([IsoDate(), Type.Null()]),
  smokeChecks: Type.Array(SmokeCheckSchema),
  concurrency: Type.Integer(),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type Profile = Static<typeof ProfileSchema>;

export const CreateProfileBody = StrictObject({
  name: Name,
  environment: Environment,
  baseUrl: BaseUrl,
  smokeChecks: Checks,
  concurrency: Type.Optional(Concurrency),
});
export type CreateProfile = Static<typeof CreateProfileBody>;

export const UpdateProfileBody = StrictObject(
  {
    name: Type.Optional(Name),
    environment: Type.Optional(Environment),
    baseUrl: Type.Optional(BaseUrl),
    smokeChecks: Type.Optional(Checks),
    concurrency: Type.Optional(Concurrency),
  },
  { minProperties: 1 },
);
export type UpdateProfile = Static<typeof UpdateProfileBody>;

export const ProfileQuery = StrictObject({
  ...PageQuerySchema.properties,
  environment: Type.Optional(Environment),
});
export type ProfileFilter = Static<typeof ProfileQuery>;

export const DeploymentSchema = Type.Object({
  id: Type.Integer(),
  profileId: Type.Integer(),
  version: Type.String(),
  commitSha: Type.Union([Type.String(), Type.Null()]),
  environment: Type.String(),
  deployedBy: Type.String(),
  notes: Type.Union([Type.String(), Type.Null()]),
  createdAt: IsoDate(),
  /** The smoke run started with this deployment (`runSmoke: true`), if any. */
  smokeRunId: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
});
export type Deployment = Static<typeof DeploymentSchema>;

export const RecordDeploymentBody = StrictObject({
  version: Version,
  commitSha: Type.Optional(CommitSha),
  environment: Type.Optional(Type.String({ ...Environment, description: "must be the profile's environment when given (a guard against recording to the wrong profile)" })),
  notes: Type.Optional(Type.String({ maxLength: 2000 })),
  runSmoke: Type.Optional(Type.Boolean({ description: 'start a smoke run of the profile after recording (queued; poll it)' })),
});
export type RecordDeployment = Static<typeof RecordDeploymentBody>;

export const SmokeResultSchema = Type.Object({
  id: Type.Integer(),
  checkName: Type.String(),
  method: Type.String(),
  url: Type.String(),
  statusCode: Type.Union([Type.Integer(), Type.Null()]),
  latencyMs: Type.Union([Type.Integer(), Type.Null()]),
  passed: Type.Boolean(),
  error: Type.Union([Type.String(), Type.Null()]),
  createdAt: IsoDate(),
});
export type SmokeResult = Static<typeof SmokeResultSchema>;

export const SmokeRunSchema = Type.Object({
  id: Type.Integer(),
  profileId: Type.Integer(),
  deploymentId: Type.Union([Type.Integer(), Type.Null()]),
  status: Type.Union(SMOKE_RUN_STATUSES.map((s) => Type.Literal(s))),
  baseUrl: Type.String(),
  requestedBy: Type.String(),
  traceId: Type.Union([Type.String(), Type.Null()], { description: 'the trace holding the run and one client span per check (when sampled)' }),
  startedAt: Type.Union([IsoDate(), Type.Null()]),
  finishedAt: Type.Union([IsoDate(), Type.Null()]),
  totalChecks: Type.Integer(),
  passedChecks: Type.Integer(),
  failedChecks: Type.Integer(),
  verdict: Type.Union([Type.String(), Type.Null()]),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type SmokeRun = Static<typeof SmokeRunSchema>;

export const SmokeRunDetailSchema = Type.Object({
  ...SmokeRunSchema.properties,
  results: Type.Array(SmokeResultSchema, { description: 'one per check, in the order of the checks; empty until the run finishes' }),
});
export type SmokeRunDetail = Static<typeof SmokeRunDetailSchema>;

export const StartSmokeRunQuery = StrictObject({
  wait: Type.Optional(Type.Boolean({ default: false, description: 'run now and answer with the verdict (201), up to 30 s; otherwise 202 and poll' })),
});

export const SmokeRunQuery = StrictObject({
  ...PageQuerySchema.properties,
  status: Type.Optional(Type.Union(SMOKE_RUN_STATUSES.map((s) => Type.Literal(s)))),
});
export type SmokeRunFilter = Static<typeof SmokeRunQuery>;

export const ProfileIdParams = StrictObject({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });
export const RunIdParams = StrictObject({ runId: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });

export const OverviewItemSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  environment: Type.String(),
  baseUrl: Type.String(),
  currentVersion: Type.Union([Type.String(), Type.Null()]),
  lastDeployedAt: Type.Union([IsoDate(), Type.Null()]),
  lastRun: Type.Union([
    Type.Object({
      id: Type.Integer(),
      status: Type.Union(SMOKE_RUN_STATUSES.map((s) => Type.Literal(s))),
      verdict: Type.Union([Type.String(), Type.Null()]),
      finishedAt: Type.Union([IsoDate(), Type.Null()]),
    }),
    Type.Null(),
  ]),
});
export type OverviewItem = Static<typeof OverviewItemSchema>;
