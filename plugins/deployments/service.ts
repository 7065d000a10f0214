import { and, asc, count, desc, eq, gt, inArray, lt, or, sql, type SQL } from 'drizzle-orm';
import type { Db, DbOrTx } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique, ProblemError, type ProblemErrorItem } from '../../src/problem.js';
import type {
  CreateProfile,
  Deployment,
  OverviewItem,
  Profile,
  ProfileFilter,
  RecordDeployment,
  SmokeCheckInput,
  SmokeResult,
  SmokeRun,
  SmokeRunDetail,
  SmokeRunFilter,
  UpdateProfile,
} from './schemas.js';
import { checkUrl, type SmokeCheck, type SmokeCheckResult } from './smoke-runner.js';
import { deploymentProfiles, deployments, smokeRuns, smokeTestResults, type SmokeRunStatus } from './table.js';

type ProfileRow = typeof deploymentProfiles.$inferSelect;
type DeploymentRow = typeof deployments.$inferSelect;
type RunRow = typeof smokeRuns.$inferSelect;
type ResultRow = typeof smokeTestResults.$inferSelect;
export type ClaimedRun = RunRow & { startedAt: Date };

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

const toProfile = (row: ProfileRow): Profile => ({
  id: row.id,
  name: row.name,
  environment: row.environment,
  baseUrl: row.baseUrl,
  currentVersion: row.currentVersion,
  lastDeployedAt: iso(row.lastDeployedAt),
  smokeChecks: row.smokeChecks,
  concurrency: row.concurrency,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

const toDeployment = (row: DeploymentRow): Deployment => ({
  id: row.id,
  profileId: row.profileId,
  version: row.version,
  commitSha: row.commitSha,
  environment: row.environment,
  deployedBy: row.deployedBy,
  notes: row.notes,
  createdAt: row.createdAt.toISOString(),
});

const toRun = (row: RunRow): SmokeRun => ({
  id: row.id,
  profileId: row.profileId,
  deploymentId: row.deploymentId,
  status: row.status,
  baseUrl: row.baseUrl,
  requestedBy: row.requestedBy,
  traceId: row.traceparent ? row.traceparent.slice(3, 35) : null,
  startedAt: iso(row.startedAt),
  finishedAt: iso(row.finishedAt),
  totalChecks: row.totalChecks,
  passedChecks: row.passedChecks,
  failedChecks: row.failedChecks,
  verdict: row.verdict,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

const toResult = (row: ResultRow): SmokeResult => ({
  id: row.id,
  checkName: row.checkName,
  method: row.method,
  url: row.url,
  statusCode: row.statusCode,
  latencyMs: row.latencyMs,
  passed: row.passed,
  error: row.error,
  createdAt: row.createdAt.toISOString(),
});


const rethrowDuplicateName = (name: string) => conflictOnUnique(`A deployment profile named '${name}' already exists.`, { name });

const invalid = (errors: ProblemErrorItem[]): ProblemError =>
  new ProblemError('validation-failed', { detail: errors.map((e) => `${e.pointer}: ${e.message}`).join('; '), errors });

/**
 * The base URL as stored: lower-case scheme and host, no trailing slash. Only http and https;
 * credentials, a query or a fragment are refused (credentials would end up in every result row).
 */
export function normaliseBaseUrl(raw: string): string {
  const fail = (message: string) => invalid([{ in: 'body', pointer: '#/baseUrl', message }]);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw fail('is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw fail('must be an http or https URL');
  if (!url.hostname) throw fail('must name a host');
  if (url.username || url.password) throw fail('must not carry credentials');
  if (url.search || url.hash || raw.includes('?') || raw.includes('#')) throw fail('must not have a query or fragment (put them in the check path)');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** Checks with their defaults filled in; names unique, HEAD without a body check, latency within the timeout. */
export function normaliseChecks(input: readonly SmokeCheckInput[], baseUrl: string): SmokeCheck[] {
  const errors: ProblemErrorItem[] = [];
  const seen = new Set<string>();
  const checks = input.map((c, i): SmokeCheck => {
    const check: SmokeCheck = {
      name: c.name,
      method: c.method ?? 'GET',
      path: c.path,
      expectedStatus: c.expectedStatus ?? 200,
      maxLatencyMs: c.maxLatencyMs ?? 1000,
      timeoutMs: c.timeoutMs ?? 5000,
    };
    if (c.bodyContains !== undefined) check.bodyContains = c.bodyContains;
    const at = (field: string) => `#/smokeChecks/${i}${field}`;
    if (seen.has(c.name)) errors.push({ in: 'body', pointer: at('/name'), message: `duplicate check name '${c.name}'` });
    seen.add(c.name);
    if (check.method === 'HEAD' && check.bodyContains !== undefined) errors.push({ in: 'body', pointer: at('/bodyContains'), message: 'a HEAD response has no body to search' });
    if (check.maxLatencyMs > check.timeoutMs) errors.push({ in: 'body', pointer: at('/maxLatencyMs'), message: `must be at most timeoutMs (${check.timeoutMs})` });
    try {
      new URL(checkUrl(baseUrl, check.path));
    } catch {
      errors.push({ in: 'body', pointer: at('/path'), message: 'does not make a valid URL with the base URL' });
    }
    return check;
  });
  if (errors.length) throw invalid(errors);
  return checks;
}

/** The longest a run can take: every wave of `concurrency` checks waits for its slowest timeout. */
export function worstCaseMs(checks: readonly SmokeCheck[], concurrency: number): number {
  const waves = Math.ceil(checks.length / Math.max(1, concurrency));
  return waves * Math.max(0, ...checks.map((c) => c.timeoutMs));
}

/** Counts and a one-line verdict for a finished run. */
export function judge(results: readonly SmokeCheckResult[]): { status: Extract<SmokeRunStatus, 'passed' | 'failed'>; passed: number; failed: number; verdict: string } {
  const failedNames = results.filter((r) => !r.passed).map((r) => r.name);
  const passed = results.length - failedNames.length;
  if (failedNames.length === 0) return { status: 'passed', passed, failed: 0, verdict: `passed: ${passed} of ${results.length} checks` };
  const shown = failedNames.slice(0, 5).join(', ') + (failedNames.length > 5 ? ', ...' : '');
  return { status: 'failed', passed, failed: failedNames.length, verdict: `failed: ${failedNames.length} of ${results.length} checks (${shown})` };
}

/**
 * Profiles, deployment history and smoke runs, without HTTP: reads take the pool, writes take
 * the caller's transaction so the route can audit in the same one.
 */
export function createDeploymentService(deps: { db: Db }) {
  const { db } = deps;

  async function profileRow(tx: DbOrTx, id: number, lock = false): Promise<ProfileRow | undefined> {
    const q = tx.select().from(deploymentProfiles).where(eq(deploymentProfiles.id, id));
    const [row] = lock ? await q.for('update') : await q;
    return row;
  }

  /** Oldest first; keyset on id. */
  async function listProfiles(filter: ProfileFilter & { limit: number }): Promise<Page<Profile>> {
    const where: SQL[] = [];
    if (filter.environment) where.push(eq(deploymentProfiles.environment, filter.environment));
    const afterId = decodeIdCursor(filter.cursor);
    if (afterId !== undefined) where.push(gt(deploymentProfiles.id, afterId));
    const rows = await db
      .select()
      .from(deploymentProfiles)
      .where(where.length ? and(...where) : undefined)
      .orderBy(asc(deploymentProfiles.id))
      .limit(filter.limit + 1);
    return toPage(rows, filter.limit, (r) => [r.id], toProfile);
  }

  return {
    listProfiles,

    async profileById(id: number): Promise<Profile | undefined> {
      const row = await profileRow(db, id);
      return row && toProfile(row);
    },

    async createProfile(tx: DbOrTx, input: CreateProfile): Promise<Profile> {
      const baseUrl = normaliseBaseUrl(input.baseUrl);
      const smokeChecks = normaliseChecks(input.smokeChecks, baseUrl);
      const [row] = await tx
        .insert(deploymentProfiles)
        .values({ name: input.name, environment: input.environment, baseUrl, smokeChecks, concurrency: input.concurrency ?? 4 })
        .returning()
        .catch(rethrowDuplicateName(input.name));
      return toProfile(row!);
    },

    async updateProfile(tx: DbOrTx, id: number, patch: UpdateProfile): Promise<{ before: Profile; after: Profile } | undefined> {
      const current = await profileRow(tx, id, true);
      if (!current) return undefined;
      const baseUrl = patch.baseUrl !== undefined ? normaliseBaseUrl(patch.baseUrl) : current.baseUrl;
      const smokeChecks = normaliseChecks(patch.smokeChecks ?? current.smokeChecks, baseUrl);
      const [row] = await tx
        .update(deploymentProfiles)
        .set({
          name: patch.name ?? current.name,
          environment: patch.environment ?? current.environment,
          baseUrl,
          smokeChecks,
          concurrency: patch.concurrency ?? current.concurrency,
          updatedAt: new Date(),
        })
        .where(eq(deploymentProfiles.id, id))
        .returning()
        .catch(rethrowDuplicateName(patch.name ?? current.name));
      return { before: toProfile(current), after: toProfile(row!) };
    },

    /** The deleted profile (its deployments, runs and results go with it), or undefined. */
    async removeProfile(tx: DbOrTx, id: number): Promise<Profile | undefined> {
      const [row] = await tx.delete(deploymentProfiles).where(eq(deploymentProfiles.id, id)).returning();
      return row && toProfile(row);
    },

    /**
     * Appends to the history and moves the profile's current version, under a row lock so two
     * deployments recorded at once leave the profile at the later one. Undefined: no profile.
     */
    async recordDeployment(
      tx: DbOrTx,
      profileId: number,
      input: RecordDeployment,
      deployedBy: string,
    ): Promise<{ deployment: Deployment; before: Profile; after: Profile } | undefined> {
      const profile = await profileRow(tx, profileId, true);
      if (!profile) return undefined;
      if (input.environment !== undefined && input.environment !== profile.environment) {
        throw new ProblemError('unprocessable', {
          detail: `Profile '${profile.name}' deploys to '${profile.environment}', not '${input.environment}'.`,
          extensions: { profileEnvironment: profile.environment },
        });
      }
      const [row] = await tx
        .insert(deployments)
        .values({
          profileId,
          version: input.version,
          commitSha: input.commitSha?.toLowerCase() ?? null,
          environment: profile.environment,
          deployedBy,
          notes: input.notes ?? null,
        })
        .returning();
      const [updated] = await tx
        .update(deploymentProfiles)
        .set({ currentVersion: input.version, lastDeployedAt: row!.createdAt, updatedAt: new Date() })
        .where(eq(deploymentProfiles.id, profileId))
        .returning();
      return { deployment: toDeployment(row!), before: toProfile(profile), after: toProfile(updated!) };
    },

    /** Newest first; keyset on id. */
    async listDeployments(profileId: number, page: { cursor?: string; limit: number }): Promise<Page<Deployment>> {
      const where: SQL[] = [eq(deployments.profileId, profileId)];
      const beforeId = decodeIdCursor(page.cursor);
      if (beforeId !== undefined) where.push(lt(deployments.id, beforeId));
      const rows = await db
        .select()
        .from(deployments)
        .where(and(...where))
        .orderBy(desc(deployments.id))
        .limit(page.limit + 1);
      return toPage(rows, page.limit, (r) => [r.id], toDeployment);
    },

    async deploymentById(profileId: number, deploymentId: number): Promise<Deployment | undefined> {
      const [row] = await db
        .select()
        .from(deployments)
        .where(and(eq(deployments.id, deploymentId), eq(deployments.profileId, profileId)));
      return row && toDeployment(row);
    },

    /** A queued run of the profile's current checks. Undefined: no profile. */
    async createRun(tx: DbOrTx, profileId: number, opts: { deploymentId?: number | null; requestedBy: string; traceparent: string | null; tracestate?: string | null }): Promise<SmokeRun | undefined> {
      const profile = await profileRow(tx, profileId);
      if (!profile) return undefined;
      const [row] = await tx
        .insert(smokeRuns)
        .values({
          profileId,
          deploymentId: opts.deploymentId ?? null,
          baseUrl: profile.baseUrl,
          checks: profile.smokeChecks,
          concurrency: profile.concurrency,
          requestedBy: opts.requestedBy,
          traceparent: opts.traceparent,
          tracestate: opts.tracestate ?? null,
          totalChecks: profile.smokeChecks.length,
        })
        .returning();
      return toRun(row!);
    },

    /** Newest first; keyset on id. */
    async listRuns(profileId: number, filter: SmokeRunFilter & { limit: number }): Promise<Page<SmokeRun>> {
      const where: SQL[] = [eq(smokeRuns.profileId, profileId)];
      if (filter.status) where.push(eq(smokeRuns.status, filter.status));
      const beforeId = decodeIdCursor(filter.cursor);
      if (beforeId !== undefined) where.push(lt(smokeRuns.id, beforeId));
      const rows = await db
        .select()
        .from(smokeRuns)
        .where(and(...where))
        .orderBy(desc(smokeRuns.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toRun);
    },

    async runById(runId: number): Promise<SmokeRunDetail | undefined> {
      const [row] = await db.select().from(smokeRuns).where(eq(smokeRuns.id, runId));
      if (!row) return undefined;
      const results = await db.select().from(smokeTestResults).where(eq(smokeTestResults.runId, runId)).orderBy(asc(smokeTestResults.id));
      return { ...toRun(row), results: results.map(toResult) };
    },

    async runStatus(runId: number): Promise<SmokeRunStatus | undefined> {
      const [row] = await db.select({ status: smokeRuns.status }).from(smokeRuns).where(eq(smokeRuns.id, runId));
      return row?.status;
    },

    /**
     * Takes a run for execution: a queued one, or a running one whose claim ran out (its
     * executor died). `startedAt` is the claim's token: only its holder can finish the run.
     * Undefined: someone else has it, it is finished, or it is gone.
     */
    async claimRun(runId: number, now = new Date()): Promise<ClaimedRun | undefined> {
      const [current] = await db.select().from(smokeRuns).where(eq(smokeRuns.id, runId));
      if (!current) return undefined;
      const claimMs = worstCaseMs(current.checks, current.concurrency) + 10_000;
      const [row] = await db
        .update(smokeRuns)
        .set({ status: 'running', startedAt: now, claimedUntil: new Date(now.getTime() + claimMs), updatedAt: now })
        .where(and(eq(smokeRuns.id, runId), or(eq(smokeRuns.status, 'queued'), and(eq(smokeRuns.status, 'running'), lt(smokeRuns.claimedUntil, now)))))
        .returning();
      return row?.startedAt ? { ...row, startedAt: row.startedAt } : undefined;
    },

    /**
     * Stores the results and the verdict in one transaction, if the run is still this
     * executor's (`claim.startedAt`). Returns the finished run, or undefined when it was not.
     */
    async finishRun(
      claim: ClaimedRun,
      outcome: { status: Extract<SmokeRunStatus, 'passed' | 'failed' | 'error'>; passed: number; failed: number; verdict: string; results: readonly SmokeCheckResult[] },
    ): Promise<SmokeRun | undefined> {
      return db.transaction(async (tx) => {
        const now = new Date();
        const [row] = await tx
          .update(smokeRuns)
          .set({
            status: outcome.status,
            finishedAt: now,
            claimedUntil: null,
            passedChecks: outcome.passed,
            failedChecks: outcome.failed,
            verdict: outcome.verdict.slice(0, 500),
            updatedAt: now,
          })
          .where(and(eq(smokeRuns.id, claim.id), eq(smokeRuns.status, 'running'), eq(smokeRuns.startedAt, claim.startedAt)))
          .returning();
        if (!row) return undefined;
        if (outcome.results.length) {
          await tx.insert(smokeTestResults).values(
            outcome.results.map((r) => ({
              runId: claim.id,
              checkName: r.name,
              method: r.method,
              url: r.url.slice(0, 4096),
              statusCode: r.statusCode,
              latencyMs: Math.round(r.latencyMs),
              passed: r.passed,
              error: r.error?.slice(0, 500) ?? null,
            })),
          );
        }
        return toRun(row);
      });
    },

    async profileSummary(profileId: number): Promise<{ id: number; name: string; environment: string } | undefined> {
      const [row] = await db
        .select({ id: deploymentProfiles.id, name: deploymentProfiles.name, environment: deploymentProfiles.environment })
        .from(deploymentProfiles)
        .where(eq(deploymentProfiles.id, profileId));
      return row;
    },

    /** Profiles with their current version and their latest finished run, by id. */
    async overview(filter: ProfileFilter & { limit: number }): Promise<Page<OverviewItem>> {
      const page = await listProfiles(filter);
      const ids = page.items.map((p) => p.id);
      const lastRuns = ids.length
        ? await db
            .selectDistinctOn([smokeRuns.profileId], {
              profileId: smokeRuns.profileId,
              id: smokeRuns.id,
              status: smokeRuns.status,
              verdict: smokeRuns.verdict,
              finishedAt: smokeRuns.finishedAt,
            })
            .from(smokeRuns)
            .where(and(inArray(smokeRuns.profileId, ids), inArray(smokeRuns.status, ['passed', 'failed', 'error'])))
            .orderBy(smokeRuns.profileId, desc(smokeRuns.id))
        : [];
      const byProfile = new Map(lastRuns.map((r) => [r.profileId, r]));
      return {
        nextCursor: page.nextCursor,
        items: page.items.map((p) => {
          const run = byProfile.get(p.id);
          return {
            id: p.id,
            name: p.name,
            environment: p.environment,
            baseUrl: p.baseUrl,
            currentVersion: p.currentVersion,
            lastDeployedAt: p.lastDeployedAt,
            lastRun: run ? { id: run.id, status: run.status, verdict: run.verdict, finishedAt: iso(run.finishedAt) } : null,
          };
        }),
      };
    },

    /** For the admin overview: one statement. */
    /**
     * Ends as `error` every run still `running` whose claim ran out more than `graceMs` ago: its
     * executor died or could not record its verdict (the database was down when it finished),
     * and no queued job will take it over (a `?wait=true` run has none). Returns the ids ended.
     */
    async endAbandonedRuns(graceMs: number, now = new Date()): Promise<number[]> {
      const rows = await db
        .update(smokeRuns)
        .set({ status: 'error', verdict: 'error: abandoned: its executor stopped before recording a verdict', finishedAt: now, claimedUntil: null, updatedAt: now })
        .where(and(eq(smokeRuns.status, 'running'), lt(smokeRuns.claimedUntil, new Date(now.getTime() - graceMs))))
        .returning({ id: smokeRuns.id });
      return rows.map((r) => r.id);
    },

    async figures(): Promise<{ profiles: number; runsInProgress: number; failedRunsLast24h: number }> {
      const [row] = await db
        .select({
          profiles: sql<number>`(select count(*)::int from ${deploymentProfiles})`,
          runsInProgress: count(),
          failedRunsLast24h: sql<number>`(select count(*)::int from ${smokeRuns} where ${smokeRuns.status} in ('failed', 'error') and ${smokeRuns.finishedAt} > now() - interval '24 hours')`,
        })
        .from(smokeRuns)
        .where(inArray(smokeRuns.status, ['queued', 'running']));
      return { profiles: Number(row?.profiles ?? 0), runsInProgress: Number(row?.runsInProgress ?? 0), failedRunsLast24h: Number(row?.failedRunsLast24h ?? 0) };
    },
  };
}
export type DeploymentService = ReturnType<typeof createDeploymentService>;
