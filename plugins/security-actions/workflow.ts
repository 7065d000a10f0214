import { Value } from '@sinclair/typebox/value';
import type { FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../../db/client.js';
import type { Actor } from '../../src/audit/writer.js';
import { ProblemError } from '../../src/problem.js';
import { safeMessage } from '../../src/secrets.js';
import type { WriteThrough } from '../../src/write-through.js';
import type { Executor, Executors } from './executors.js';
import { PARAMS_SCHEMAS, type ActionParams, type ActionStatus, type ActionType, type CreateAction, type Decide, type SecurityAction, type Severity } from './schemas.js';
import type { ActionRow, KnownActor, SecurityActionService } from './service.js';

/**
 * The state machine (Vault control groups and Teleport access requests are the models: N
 * approvals from people other than the requester, a time to live):
 *
 *   pending → approved → executing → executed | failed
 *   pending → rejected | cancelled | expired
 *
 * Every transition takes the action's row lock first (`FOR UPDATE`), so two approvals, an
 * approval and a cancel, or two executions of one action queue up and the second sees what
 * the first did: nothing executes twice.
 */
export const TARGET = 'security-action';
const DEFAULT_TTL_MS = 24 * 3600_000;
const MAX_TTL_MS = 30 * 86_400_000;
/** An execution still `executing` this long after it started died before committing (its effect did not happen). */
export const EXECUTION_LEASE_MS = 5 * 60_000;
/** An action `approved` this long ago whose execution never started is executed by the sweep. */
export const LEFT_APPROVED_MS = 60_000;
/**
 * How long the approval that completed the count waits for another caller's execution of the
 * action (an operator's `/execute` on another instance) to finish, so it answers the outcome;
 * past it, it answers `executing` as it is then.
 */
const SETTLE_WAIT_MS = 15_000;
/** Who the expiry sweep's audit entries name. */
export const SWEEP_ACTOR: Actor = { type: 'system', id: 'security-actions', keyId: null };

export const defaultApprovals = (severity: Severity): number => (severity === 'high' || severity === 'critical' ? 2 : 1);

/** 409 naming the state the action is in, for a transition that state does not allow. */
export function invalidTransition(row: Pick<ActionRow, 'id' | 'status'>, attempted: string, allowedFrom: ActionStatus): ProblemError {
  return new ProblemError('conflict', {
    detail: `Action ${row.id} is ${row.status}; it can only be ${attempted} while ${allowedFrom}.`,
    extensions: { actionId: row.id, currentState: row.status },
  });
}

const notFound = (id: number) => new ProblemError('resource-not-found', { detail: `No security action ${id}` });

/** The requester or approver: an authenticated caller (API clients always have an id). */
function knownActor(request: FastifyRequest): KnownActor {
  const actor = request.actor;
  if (!actor || actor.id === null) throw new ProblemError('unauthorized', { detail: 'A security action needs an identified caller.' });
  return { ...actor, id: actor.id };
}

/** What a failed execution stores: the problem's own detail, or a sanitised message (no SQL, stack, address or secret). */
export function executionError(err: unknown): string {
  if (err instanceof ProblemError) {
    const first = err.options.errors?.[0];
    const detail = err.options.detail ?? err.message;
    return (first ? `${detail} (${first.pointer.replace(/^#\//, '')}: ${first.message})` : detail).slice(0, 1000);
  }
  return safeMessage(err);
}

const actionJson = (row: ActionRow) => ({ status: row.status, approvals: row.approvals, requiredApprovals: row.requiredApprovals });

/** Per-type params check with pointers into `#/params` (the body schema only says "an object"). */
function checkParams<K extends ActionType>(type: K, params: Record<string, unknown>): ActionParams[K] {
  const schema = PARAMS_SCHEMAS[type];
  const errors = [...Value.Errors(schema, params)].slice(0, 10);
  if (errors.length === 0) return params as ActionParams[K];
  throw new ProblemError('validation-failed', {
    detail: `params do not fit action type ${type}: ${errors[0]!.path || '/'} ${errors[0]!.message}`,
    errors: errors.map((e) => ({ in: 'body', pointer: `#/params${e.path}`, message: e.message })),
  });
}

export interface Workflow {
  create(request: FastifyRequest, body: CreateAction): Promise<SecurityAction>;
  /** Records an approval or rejection; the approval that completes the count executes the action at once. */
  decide(request: FastifyRequest, id: number, body: Decide): Promise<SecurityAction>;
  cancel(request: FastifyRequest, id: number, comment: string | null): Promise<SecurityAction>;
  /** Executes an `approved` action (one whose execution did not start after its approval). */
  execute(request: FastifyRequest | null, id: number): Promise<SecurityAction>;
  /**
   * What the periodic job runs: expires pending actions past `expiresAt`, fails executions that
   * died, and executes actions left `approved` (their instance stopped between approval and execution).
   */
  sweep(now?: Date): Promise<{ expired: number[]; interrupted: number[]; executed: number[] }>;
}

export function createWorkflow(deps: { service: SecurityActionService; executors: Executors; writeThrough: WriteThrough; isAdmin: (request: FastifyRequest) => boolean }): Workflow {
  const { service, executors, writeThrough } = deps;

  /**
   * A pending action past its expiry is expired whoever touches it first (the sweep or a
   * decision): recorded, then the caller answers 409 naming `expired`.
   */
  async function expireIfDue(tx: Parameters<Parameters<WriteThrough>[2]>[0], row: ActionRow, now: Date) {
    if (row.status !== 'pending' || row.expiresAt > now) return null;
    const after = await service.transition(tx, row.id, 'expired', { decidedAt: now, finishedAt: now });
    return { operation: `${TARGET}.expire`, targetType: TARGET, targetId: row.id, before: actionJson(row), after: actionJson(after) };
  }

  async function current(id: number): Promise<SecurityAction> {
    const action = await service.byId(id);
    if (!action) throw notFound(id);
    return action;
  }

  /** The action once an execution someone else claimed has finished (bounded by SETTLE_WAIT_MS). */
  async function settled(id: number): Promise<SecurityAction> {
    const deadline = Date.now() + SETTLE_WAIT_MS;
    for (;;) {
      const action = await current(id);
      if (action.status !== 'executing' || Date.now() >= deadline) return action;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Runs one executor's effect; the generic type ties the params to the executor. */
  function runEffect<K extends ActionType>(type: K, tx: Parameters<Parameters<WriteThrough>[2]>[0], row: ActionRow, actor: Actor) {
    const executor = executors[type] as Executor<ActionParams[K]>;
    return executor.run(tx, row.params as ActionParams[K], { id: row.id, reason: row.reason, severity: row.severity as Severity, actor });
  }

  async function execute(request: FastifyRequest | null, id: number, auto = false): Promise<SecurityAction> {
    const actor: Actor = request?.actor ?? SWEEP_ACTOR;
    // Without a request (the sweep) the entries name the sweep, not an anonymous caller.
    const by = <E extends object>(entry: E): E & { actor?: Actor } => (request ? entry : { ...entry, actor: SWEEP_ACTOR });
    // 1. Claim: approved → executing, committed on its own so the state is visible while the effect runs.
    const claimed = await writeThrough(request, {}, async (tx) => {
      const row = await service.lock(tx, id);
      if (!row) throw notFound(id);
      if (row.status !== 'approved') {
        // Someone else claimed it first (an operator's /execute, the sweep): their run answers for it.
        if (auto) return { result: null, audit: null };
        throw invalidTransition(row, 'executed', 'approved');
      }
      const after = await service.transition(tx, id, 'executing', { executionStartedAt: new Date() });
      return { result: after, audit: null };
    });
    if (!claimed) return settled(id);

    const type = claimed.type as ActionType;
    const executor: Executor<unknown> = executors[type] as Executor<unknown>;
    // 2. The effect, the `executed` state and the audit entries in one transaction.
    try {
      await writeThrough(request, { refresh: executor.refresh() }, async (tx) => {
        const row = await service.lock(tx, id);
        if (!row || row.status !== 'executing') throw invalidTransition(row ?? claimed, 'executed', 'executing');
        const effect = await runEffect(type, tx, row, actor);
        const now = new Date();
        const after = await service.transition(tx, id, 'executed', { result: effect.result, finishedAt: now });
        return {
          result: after,
          audit: [
            { operation: `${TARGET}.execute`, targetType: TARGET, targetId: id, reason: row.reason, before: actionJson(row), after: { ...actionJson(after), type, result: effect.result } },
            ...effect.audit,
          ].map(by),
        };
      });
    } catch (err) {
      // The database is gone: the action stays `executing` and the sweep fails it after the lease.
      if (isDatabaseUnavailable(err)) throw err;
      const error = executionError(err);
      // 3. The effect rolled back: record why, with its own audit entry.
      await writeThrough(request, {}, async (tx) => {
        const row = await service.lock(tx, id);
        if (!row || row.status !== 'executing') return { result: null, audit: null };
        const after = await service.transition(tx, id, 'failed', { error, finishedAt: new Date() });
        return { result: after, audit: by({ operation: `${TARGET}.execute`, targetType: TARGET, targetId: id, reason: row.reason, result: 'failure' as const, before: actionJson(row), after: { ...actionJson(after), type, error } }) };
      });
    }
    return current(id);
  }

  return {
    async create(request, body) {
      const requestedBy = knownActor(request);
      const now = Date.now();
      const params = checkParams(body.type, body.params);
      const severity = body.severity ?? 'medium';
      const floor = defaultApprovals(severity);
      const requiredApprovals = body.requiredApprovals ?? floor;
      if (requiredApprovals < floor) {
        throw new ProblemError('validation-failed', {
          detail: `requiredApprovals must be at least ${floor} for severity ${severity}.`,
          errors: [{ in: 'body', pointer: '#/requiredApprovals', message: `must be at least ${floor} for severity ${severity}` }],
        });
      }
      const expiresAt = body.expiresAt === undefined ? new Date(now + DEFAULT_TTL_MS) : new Date(body.expiresAt);
      if (expiresAt.getTime() <= now || expiresAt.getTime() > now + MAX_TTL_MS) {
        throw new ProblemError('validation-failed', {
          detail: 'expiresAt must lie in the next 30 days.',
          errors: [{ in: 'body', pointer: '#/expiresAt', message: 'must be in the future and at most 30 days ahead' }],
        });
      }
      await (executors[body.type] as Executor<unknown>).check(params, now);
      return writeThrough(request, {}, async (tx) => {
        const row = await service.insert(tx, { type: body.type, params, reason: body.reason, severity, requiredApprovals, expiresAt, requestedBy });
        const action = await service.withDecisions(row, tx);
        return { result: action, audit: { operation: `${TARGET}.create`, targetType: TARGET, targetId: row.id, reason: body.reason, after: action } };
      });
    },

    async decide(request, id, body) {
      const approver = knownActor(request);
      const outcome = await writeThrough<{ expired: boolean; row: ActionRow }>(request, {}, async (tx) => {
        const row = await service.lock(tx, id);
        if (!row) throw notFound(id);
        const expired = await expireIfDue(tx, row, new Date());
        if (expired) return { result: { expired: true, row }, audit: expired };
        const verb = body.decision === 'approve' ? 'approved' : 'rejected';
        if (row.status !== 'pending') throw invalidTransition(row, verb, 'pending');
        if (approver.id === row.requestedById) {
          throw new ProblemError('unprocessable', {
            detail: `The requester cannot ${body.decision} their own action; another person must decide (cancel it to withdraw it).`,
            extensions: { actionId: id, currentState: row.status },
          });
        }
        await service.addDecision(tx, id, approver, body.decision, body.comment ?? null);
        const now = new Date();
        const after =
          body.decision === 'reject'
            ? // Any rejection rejects: one "no" is enough to stop an action.
              await service.transition(tx, id, 'rejected', { decidedAt: now, finishedAt: now })
            : row.approvals + 1 >= row.requiredApprovals
              ? await service.transition(tx, id, 'approved', { approvals: row.approvals + 1, decidedAt: now })
              : await service.transition(tx, id, 'pending', { approvals: row.approvals + 1 });
        return {
          result: { expired: false, row: after },
          audit: { operation: `${TARGET}.${body.decision}`, targetType: TARGET, targetId: id, reason: body.comment ?? null, before: actionJson(row), after: actionJson(after) },
        };
      });
      if (outcome.expired) throw invalidTransition({ id, status: 'expired' }, body.decision === 'approve' ? 'approved' : 'rejected', 'pending');
      if (outcome.row.status === 'approved') return execute(request, id, true);
      return current(id);
    },

    async cancel(request, id, comment) {
      const actor = knownActor(request);
      const outcome = await writeThrough(request, {}, async (tx) => {
        const row = await service.lock(tx, id);
        if (!row) throw notFound(id);
        const expired = await expireIfDue(tx, row, new Date());
        if (expired) return { result: true, audit: expired };
        if (row.status !== 'pending') throw invalidTransition(row, 'cancelled', 'pending');
        if (actor.id !== row.requestedById && !deps.isAdmin(request)) {
          throw new ProblemError('forbidden', { detail: 'Only the requester or an admin can cancel an action.', extensions: { requiredScope: 'admin' } });
        }
        const now = new Date();
        const after = await service.transition(tx, id, 'cancelled', { decidedAt: now, finishedAt: now });
        return { result: false, audit: { operation: `${TARGET}.cancel`, targetType: TARGET, targetId: id, reason: comment, before: actionJson(row), after: actionJson(after) } };
      });
      if (outcome) throw invalidTransition({ id, status: 'expired' }, 'cancelled', 'pending');
      return current(id);
    },

    execute: (request, id) => execute(request, id),

    async sweep(now = new Date()) {
      const ended = await writeThrough(null, {}, async (tx) => {
        const audit = [];
        const expired: number[] = [];
        for (const row of await service.lockExpiredPending(tx, now, 500)) {
          const entry = await expireIfDue(tx, row, now);
          if (entry) {
            audit.push({ ...entry, actor: SWEEP_ACTOR });
            expired.push(row.id);
          }
        }
        const interrupted: number[] = [];
        for (const row of await service.lockStaleExecuting(tx, new Date(now.getTime() - EXECUTION_LEASE_MS), 100)) {
          const error = 'The execution was interrupted before it committed (its process stopped or lost the database); nothing was changed.';
          const after = await service.transition(tx, row.id, 'failed', { error, finishedAt: now });
          audit.push({ actor: SWEEP_ACTOR, operation: `${TARGET}.execute`, targetType: TARGET, targetId: row.id, result: 'failure' as const, before: actionJson(row), after: { ...actionJson(after), error } });
          interrupted.push(row.id);
        }
        return { result: { expired, interrupted }, audit };
      });
      // Each in its own transactions, as an approval would run it; the claim's row lock keeps a
      // racing /execute from running it twice.
      const executed: number[] = [];
      for (const id of await service.leftApproved(new Date(now.getTime() - LEFT_APPROVED_MS), 20)) {
        const action = await execute(null, id, true);
        if (action.status === 'executed' || action.status === 'failed') executed.push(id);
      }
      return { ...ended, executed };
    },
  };
}
