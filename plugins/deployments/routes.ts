import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Actor } from '../../src/audit/writer.js';
import { PageOf, PageQuerySchema, pageLimit } from '../../src/pagination.js';
import { problemError, problemResponses } from '../../src/problem.js';
import { StrictObject } from '../../src/schemas.js';
import type { Deployments } from './index.js';
import { SMOKE_RUN_JOB } from './jobs.js';
import {
  CreateProfileBody,
  DeploymentSchema,
  OverviewItemSchema,
  ProfileIdParams,
  ProfileQuery,
  ProfileSchema,
  RecordDeploymentBody,
  RunIdParams,
  SmokeRunDetailSchema,
  SmokeRunQuery,
  SmokeRunSchema,
  StartSmokeRunQuery,
  UpdateProfileBody,
} from './schemas.js';
import { safeMessage } from '../../src/secrets.js';
import { formatTraceparent } from '../tracing/trace-context.js';

const TAGS = ['deployments'];
const ROOT = '/system/deployment';
const PROFILES = `${ROOT}/profiles`;
const RUNS = `${ROOT}/smoke-runs`;
const TARGET = 'deployment-profile';

/** How long `?wait=true` holds the request for a verdict before answering 202 (the run goes on). */
export const SMOKE_WAIT_MAX_MS = 30_000;
const WAIT_POLL_MS = 100;

const profileNotFound = (id: number) => problemError('resource-not-found', `No deployment profile ${id}`);
const runNotFound = (id: number) => problemError('resource-not-found', `No smoke run ${id}`);

/** Who did it, as the history shows it: `client:12`, `bootstrap`, `anonymous`. */
export const actorLabel = (actor: Actor | null): string => (!actor ? 'anonymous' : actor.id ? `${actor.type}:${actor.id}` : actor.type);

/**
 * The request's own span and its caller's tracestate, stored with the run, so a queued run's
 * spans still join the trace that asked for it and its checks forward the tracestate.
 */
function traceOf(request: FastifyRequest): { traceparent: string | null; tracestate: string | null } {
  const ctx = request.traceContext ?? null;
  return ctx ? { traceparent: formatTraceparent(ctx), tracestate: ctx.traceState } : { traceparent: null, tracestate: null };
}

const DeploymentParams = StrictObject({
  id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  deploymentId: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
});

/**
 * Profiles CRUD, deployment history and smoke runs. Profile writes and recording a deployment
 * are control-plane changes (`freeze: true`: refused during a change freeze). Starting a smoke
 * run only reads the target, so it is allowed during a freeze. Every write goes through
 * `app.writeThrough` (audited in its transaction; no in-memory state to refresh).
 */
export const deploymentRoutes =
  ({ service, executor }: Deployments): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      ROOT,
      {
        config: { scope: 'deployments:read' },
        schema: {
          tags: TAGS,
          summary: 'Overview: each profile with its current version and latest smoke verdict',
          querystring: ProfileQuery,
          response: { 200: PageOf(OverviewItemSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.overview({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.post(
      PROFILES,
      {
        config: { scope: 'deployments:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Create a deployment profile',
          body: CreateProfileBody,
          response: { 201: ProfileSchema, ...problemResponses(400, 401, 403, 409, 415, 423, 503) },
        },
      },
      async (request, reply) => {
        const profile = await app.writeThrough(request, {}, async (tx) => {
          const created = await service.createProfile(tx, request.body);
          return { result: created, audit: { operation: `${TARGET}.create`, targetType: TARGET, targetId: created.id, after: created } };
        });
        return reply.code(201).header('location', `${PROFILES}/${profile.id}`).send(profile);
      },
    );

    app.get(
      PROFILES,
      {
        config: { scope: 'deployments:read' },
        schema: {
          tags: TAGS,
          summary: 'List deployment profiles, oldest first',
          querystring: ProfileQuery,
          response: { 200: PageOf(ProfileSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.listProfiles({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${PROFILES}/:id`,
      {
        config: { scope: 'deployments:read' },
        schema: {
          tags: TAGS,
          summary: 'One deployment profile',
          params: ProfileIdParams,
          response: { 200: ProfileSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const profile = await service.profileById(request.params.id);
        if (!profile) throw profileNotFound(request.params.id);
        return profile;
      },
    );

    app.patch(
      `${PROFILES}/:id`,
      {
        config: { scope: 'deployments:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Change a deployment profile (its current version moves only by recording deployments)',
          params: ProfileIdParams,
          body: UpdateProfileBody,
          response: { 200: ProfileSchema, ...problemResponses(400, 401, 403, 404, 409, 415, 423, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        return app.writeThrough(request, {}, async (tx) => {
          const changed = await service.updateProfile(tx, id, request.body);
          if (!changed) throw profileNotFound(id);
          return { result: changed.after, audit: { operation: `${TARGET}.update`, targetType: TARGET, targetId: id, before: changed.before, after: changed.after } };
        });
      },
    );

    app.delete(
      `${PROFILES}/:id`,
      {
        config: { scope: 'deployments:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Delete a deployment profile with its deployment history and smoke runs',
          params: ProfileIdParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 401, 403, 404, 423, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        await app.writeThrough(request, {}, async (tx) => {
          const removed = await service.removeProfile(tx, id);
          if (!removed) throw profileNotFound(id);
          return { result: null, audit: { operation: `${TARGET}.delete`, targetType: TARGET, targetId: id, before: removed } };
        });
        return reply.code(204).send(null);
      },
    );

    app.post(
      `${PROFILES}/:id/deployments`,
      {
        config: { scope: 'deployments:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: "Record a deployment: appends to the history and sets the profile's current version; `runSmoke` queues a smoke run",
          params: ProfileIdParams,
          body: RecordDeploymentBody,
          response: { 201: DeploymentSchema, ...problemResponses(400, 401, 403, 404, 415, 422, 423, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const deployment = await app.writeThrough(request, {}, async (tx) => {
          const recorded = await service.recordDeployment(tx, id, request.body, actorLabel(request.actor));
          if (!recorded) throw profileNotFound(id);
          let smokeRunId: number | null = null;
          if (request.body.runSmoke) {
            const run = await service.createRun(tx, id, { deploymentId: recorded.deployment.id, requestedBy: actorLabel(request.actor), ...traceOf(request) });
            smokeRunId = run!.id;
            await app.jobs.enqueue(SMOKE_RUN_JOB, { runId: smokeRunId }, { tx });
          }
          return {
            result: { ...recorded.deployment, smokeRunId },
            audit: {
              operation: 'deployment.record',
              targetType: TARGET,
              targetId: id,
              before: { currentVersion: recorded.before.currentVersion },
              after: { currentVersion: recorded.after.currentVersion, deployment: recorded.deployment, smokeRunId },
            },
          };
        });
        return reply.code(201).header('location', `${PROFILES}/${id}/deployments/${deployment.id}`).send(deployment);
      },
    );

    app.get(
      `${PROFILES}/:id/deployments`,
      {
        config: { scope: 'deployments:read' },
        schema: {
          tags: TAGS,
          summary: "A profile's deployment history, newest first",
          params: ProfileIdParams,
          querystring: StrictObject({ ...PageQuerySchema.properties }),
          response: { 200: PageOf(DeploymentSchema), ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        // Listing first: a bad cursor is a 400 whatever the id, and a non-empty page proves the profile exists.
        const page = await service.listDeployments(id, { cursor: request.query.cursor, limit: pageLimit(request.query) });
        if (page.items.length === 0 && !(await service.profileSummary(id))) throw profileNotFound(id);
        return page;
      },
    );

    app.get(
      `${PROFILES}/:id/deployments/:deploymentId`,
      {
        config: { scope: 'deployments:read' },
        schema: {
          tags: TAGS,
          summary: 'One recorded deployment',
          params: DeploymentParams,
          response: { 200: DeploymentSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const { id, deploymentId } = request.params;
        const deployment = await service.deploymentById(id, deploymentId);
        if (!deployment) throw problemError('resource-not-found', `No deployment ${deploymentId} of deployment profile ${id}`);
        return deployment;
      },
    );

    app.post(
      `${PROFILES}/:id/smoke-runs`,
      {
        config: { scope: 'deployments:write' },
        schema: {
          tags: TAGS,
          summary: 'Start a smoke run: 202 and poll the Location, or `?wait=true` for the verdict (201) within 30 s',
          params: ProfileIdParams,
          querystring: StartSmokeRunQuery,
          response: { 201: SmokeRunDetailSchema, 202: SmokeRunDetailSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const run = await app.writeThrough(request, {}, async (tx) => {
          const created = await service.createRun(tx, id, { requestedBy: actorLabel(request.actor), ...traceOf(request) });
          if (!created) throw profileNotFound(id);
          // The queued job is the durable way the run happens: a worker (or this instance) picks it up.
          await app.jobs.enqueue(SMOKE_RUN_JOB, { runId: created.id }, { tx });
          return { result: created, audit: { operation: 'smoke-run.start', targetType: TARGET, targetId: id, after: { runId: created.id } } };
        });
        reply.header('location', `${RUNS}/${run.id}`);
        const finished = request.query.wait === true && (await waitForVerdict(run.id));
        // The profile (and the run with it) may be deleted meanwhile: answer with what was queued.
        const detail = (await service.runById(run.id)) ?? { ...run, results: [] };
        return reply.code(finished ? 201 : 202).send(detail);
      },
    );

    /**
     * Runs it here unless another executor already took it, then waits for the verdict up to
     * SMOKE_WAIT_MAX_MS. True when the run finished in time.
     */
    async function waitForVerdict(runId: number): Promise<boolean> {
      const deadline = Date.now() + SMOKE_WAIT_MAX_MS;
      const executed = executor.execute(runId).catch((err: unknown) => {
        app.log.warn({ runId, err: { message: safeMessage(err) } }, 'smoke run failed to complete');
        return 'error' as const;
      });
      const timeout = new AbortController();
      const outcome = await Promise.race([executed, sleep(SMOKE_WAIT_MAX_MS, 'timeout' as const, { signal: timeout.signal }).catch(() => 'timeout' as const)]);
      timeout.abort();
      if (outcome === 'timeout' || outcome === 'error') return false;
      if (outcome) return true;
      while (Date.now() < deadline) {
        const status = await service.runStatus(runId);
        if (status === undefined || (status !== 'queued' && status !== 'running')) return status !== undefined;
        await sleep(WAIT_POLL_MS);
      }
      return false;
    }

    app.get(
      `${PROFILES}/:id/smoke-runs`,
      {
        config: { scope: 'deployments:read' },
        schema: {
          tags: TAGS,
          summary: "A profile's smoke runs, newest first",
          params: ProfileIdParams,
          querystring: SmokeRunQuery,
          response: { 200: PageOf(SmokeRunSchema), ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const page = await service.listRuns(id, { ...request.query, limit: pageLimit(request.query) });
        if (page.items.length === 0 && !(await service.profileSummary(id))) throw profileNotFound(id);
        return page;
      },
    );

    app.get(
      `${RUNS}/:runId`,
      {
        config: { scope: 'deployments:read' },
        schema: {
          tags: TAGS,
          summary: 'One smoke run with its per-check results',
          params: RunIdParams,
          response: { 200: SmokeRunDetailSchema, ...problemResponses(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const run = await service.runById(request.params.runId);
        if (!run) throw runNotFound(request.params.runId);
        return run;
      },
    );
  };
