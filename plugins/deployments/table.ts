import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import type { SmokeCheck } from './smoke-runner.js';

/** A deployable target: one service in one environment, with the smoke checks that prove it is up. */
export const deploymentProfiles = pgTable(
  'deployment_profiles',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    // The unique constraint, not a read-before-write, is what turns a duplicate into 409.
    name: text('name').notNull().unique('deployment_profiles_name_key'),
    environment: text('environment').notNull(),
    baseUrl: text('base_url').notNull(),
    /** Set by each recorded deployment; null until the first. */
    currentVersion: text('current_version'),
    lastDeployedAt: timestamp('last_deployed_at', { withTimezone: true, mode: 'date' }),
    smokeChecks: jsonb('smoke_checks').$type<SmokeCheck[]>().notNull(),
    /** How many checks of a run are in flight at once. */
    concurrency: integer('concurrency').notNull().default(4),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('deployment_profiles_environment_idx').on(t.environment, t.id)],
);

/** Deployment history: one row per recorded deployment, never changed afterwards. */
export const deployments = pgTable(
  'deployments',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    profileId: bigint('profile_id', { mode: 'number' })
      .notNull()
      .references(() => deploymentProfiles.id, { onDelete: 'cascade' }),
    version: text('version').notNull(),
    commitSha: text('commit_sha'),
    environment: text('environment').notNull(),
    deployedBy: text('deployed_by').notNull(),
    notes: text('notes'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('deployments_profile_idx').on(t.profileId, t.id)],
);

export const SMOKE_RUN_STATUSES = ['queued', 'running', 'passed', 'failed', 'error'] as const;
export type SmokeRunStatus = (typeof SMOKE_RUN_STATUSES)[number];

/**
 * One execution of a profile's checks. The checks, base URL and concurrency are copied in when
 * the run is requested, so a run executes (and its results read) against what was configured
 * then, even if the profile changes before a worker picks it up.
 */
export const smokeRuns = pgTable(
  'smoke_runs',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    profileId: bigint('profile_id', { mode: 'number' })
      .notNull()
      .references(() => deploymentProfiles.id, { onDelete: 'cascade' }),
    deploymentId: bigint('deployment_id', { mode: 'number' }).references(() => deployments.id, { onDelete: 'set null' }),
    status: text('status', { enum: SMOKE_RUN_STATUSES }).notNull().default('queued'),
    baseUrl: text('base_url').notNull(),
    checks: jsonb('checks').$type<SmokeCheck[]>().notNull(),
    concurrency: integer('concurrency').notNull(),
    requestedBy: text('requested_by').notNull(),
    /** W3C traceparent of the request that started the run: the run's spans join that trace. */
    traceparent: text('traceparent'),
    /** That request's W3C tracestate (normalised), forwarded on every check's request. */
    tracestate: text('tracestate'),
    /** While running: when another executor may take an abandoned run over. */
    claimedUntil: timestamp('claimed_until', { withTimezone: true, mode: 'date' }),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
    totalChecks: integer('total_checks').notNull(),
    passedChecks: integer('passed_checks').notNull().default(0),
    failedChecks: integer('failed_checks').notNull().default(0),
    /** One line for people: `passed: 5 of 5 checks`, `failed: 2 of 5 checks (home, api)`. */
    verdict: text('verdict'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    index('smoke_runs_profile_idx').on(t.profileId, t.id),
    index('smoke_runs_deployment_idx').on(t.deploymentId),
    index('smoke_runs_status_idx').on(t.status, t.id),
    check('smoke_runs_status_check', sql`${t.status} in ('queued', 'running', 'passed', 'failed', 'error')`),
  ],
);

/** One row per check of a finished run. `error` is a short sanitised sentence, never a stack. */
export const smokeTestResults = pgTable(
  'smoke_test_results',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    runId: bigint('run_id', { mode: 'number' })
      .notNull()
      .references(() => smokeRuns.id, { onDelete: 'cascade' }),
    checkName: text('check_name').notNull(),
    method: text('method').notNull(),
    url: text('url').notNull(),
    statusCode: integer('status_code'),
    latencyMs: integer('latency_ms'),
    passed: boolean('passed').notNull(),
    error: text('error'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  // The time index serves the retention purge and time-ranged exports (created_at, then id for keyset order).
  (t) => [index('smoke_test_results_run_idx').on(t.runId, t.id), index('smoke_test_results_created_idx').on(t.createdAt, t.id)],
);
