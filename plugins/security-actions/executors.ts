import { isIP } from 'node:net';
import type { DbOrTx } from '../../db/client.js';
import type { Actor } from '../../src/audit/writer.js';
import { ProblemError } from '../../src/problem.js';
import type { StateEntry } from '../../src/state-cache.js';
import type { WriteOutcome } from '../../src/write-through.js';
import type { ApiKeyService } from '../api-keys/service.js';
import type { BlocklistService } from '../blocklist/types.js';
import type { FlagService } from '../feature-flags/service.js';
import type { Maintenance } from '../maintenance/index.js';
import type { ActionParams, ActionType, Severity } from './schemas.js';

type Refresh = Pick<StateEntry<unknown>, 'name' | 'reload'>;
type AuditEntries = Exclude<WriteOutcome<unknown>['audit'], null>;
type AuditDescription = Extract<AuditEntries, { operation: string }>;

/** The action being executed, as an executor needs it. */
export interface ExecutionContext {
  id: number;
  reason: string;
  severity: Severity;
  /** Who triggered the execution (the last approver, or an operator's `/execute`). */
  actor: Actor;
}

/** What an effect did: the result stored on the action, and the owning pack's audit entries for it. */
export interface Effect {
  result: Record<string, unknown>;
  audit: AuditDescription[];
}

export interface Executor<P> {
  /** Cheap checks at creation (the target exists); throws a 400 naming `#/params/<field>`. */
  check(params: P, now: number): Promise<void>;
  /** The effect, inside the execution's transaction; throws to fail the action. */
  run(tx: DbOrTx, params: P, action: ExecutionContext): Promise<Effect>;
  /** The in-memory state the effect changes (reloaded on every instance on commit). */
  refresh(): Refresh[];
}

export type Executors = { [K in ActionType]: Executor<ActionParams[K]> };

/** The other packs' services the executors go through (never their tables). */
export interface ExecutorDeps {
  /** Read when an action runs, not at start: the blocklist pack decorates it. */
  blocklist: () => Pick<BlocklistService, 'entry' | 'blockAddress' | 'unblockAddress'>;
  apiKeys: { service: Pick<ApiKeyService, 'keyById' | 'clientById' | 'revokeKey' | 'updateClient' | 'assertAdminRemains'>; verifier: Refresh };
  maintenance: Pick<Maintenance, 'entry' | 'setMode'>;
  flags: { service: Pick<FlagService, 'byKey' | 'update'>; state: Refresh };
}

export const invalidParam = (field: string, message: string): ProblemError =>
  new ProblemError('validation-failed', { detail: `params.${field} ${message}`, errors: [{ in: 'body', pointer: `#/params/${field}`, message }] });

/** An effect that cannot happen (the target went away, or is already in the wanted state). */
const cannot = (detail: string): ProblemError => new ProblemError('conflict', { detail });

/** An IPv4/IPv6 address or a CIDR with a prefix length that fits its family. */
export function isAddressOrCidr(value: string): boolean {
  const slash = value.indexOf('/');
  if (slash === -1) return isIP(value) !== 0;
  const family = isIP(value.slice(0, slash));
  const prefix = value.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

const actionReason = (action: ExecutionContext) => `security action ${action.id}: ${action.reason}`;

function checkAddress(address: string): void {
  if (!isAddressOrCidr(address)) throw invalidParam('address', 'must be an IPv4 or IPv6 address or CIDR');
}

function untilOf(until: string | undefined, mode: string, now: number, field = 'until'): Date | null {
  if (until === undefined) return null;
  if (mode === 'normal') throw invalidParam(field, "is not allowed with mode 'normal'");
  const at = Date.parse(until);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(until) || Number.isNaN(at)) throw invalidParam(field, 'must be an ISO 8601 date-time');
  if (at <= now) throw invalidParam(field, 'must be in the future');
  return new Date(at);
}

/**
 * One executor per action type. Each effect runs inside the execution's transaction through the
 * owning pack's service, so the effect, the action's `executed` state and the audit entries
 * commit together or not at all.
 */
export function createExecutors(deps: ExecutorDeps): Executors {
  const { apiKeys, maintenance, flags } = deps;
  return {
    block_ip: {
      async check(params) {
        checkAddress(params.address);
      },
      async run(tx, params, action) {
        const blocked = await deps.blocklist().blockAddress(tx, {
          address: params.address,
          reason: actionReason(action),
          severity: action.severity,
          origin: 'action',
          ttlSeconds: params.ttlSeconds ?? null,
        });
        const result = { ruleId: blocked.ruleId, address: params.address, expiresAt: blocked.expiresAt?.toISOString() ?? null };
        return { result, audit: [{ operation: 'blocklist.block', targetType: 'blocklist-rule', targetId: blocked.ruleId, reason: actionReason(action), after: result }] };
      },
      refresh: () => [deps.blocklist().entry],
    },

    unblock_ip: {
      async check(params) {
        checkAddress(params.address);
      },
      async run(tx, params, action) {
        const { removedRuleIds } = await deps.blocklist().unblockAddress(tx, params.address);
        if (removedRuleIds.length === 0) throw cannot(`No active block rule is for exactly ${params.address}; nothing was unblocked.`);
        const result = { address: params.address, removedRuleIds };
        return { result, audit: [{ operation: 'blocklist.unblock', targetType: 'blocklist-rule', targetId: removedRuleIds.join(',').slice(0, 200), reason: actionReason(action), after: result }] };
      },
      refresh: () => [deps.blocklist().entry],
    },

    revoke_api_key: {
      async check(params) {
        const key = await apiKeys.service.keyById(params.keyId);
        if (!key) throw invalidParam('keyId', 'names no API key');
        if (key.status === 'revoked') throw invalidParam('keyId', 'names a key that is already revoked');
      },
      async run(tx, params, action) {
        const key = await apiKeys.service.keyById(params.keyId, tx);
        if (!key) throw cannot(`API key ${params.keyId} no longer exists.`);
        const revoked = await apiKeys.service.revokeKey(tx, key.clientId, params.keyId, actionReason(action).slice(0, 500));
        if (!revoked) throw cannot(`API key ${params.keyId} no longer exists.`);
        await apiKeys.service.assertAdminRemains(tx);
        return {
          result: { keyId: params.keyId, clientId: key.clientId, revokedAt: revoked.after.revokedAt },
          audit: [{ operation: 'api-key.revoke', targetType: 'api-key', targetId: params.keyId, reason: actionReason(action), before: revoked.before, after: revoked.after }],
        };
      },
      refresh: () => [apiKeys.verifier],
    },

    suspend_client: {
      async check(params) {
        const client = await apiKeys.service.clientById(params.clientId);
        if (!client) throw invalidParam('clientId', 'names no API client');
        if (client.status === 'suspended') throw invalidParam('clientId', 'names a client that is already suspended');
      },
      async run(tx, params, action) {
        const changed = await apiKeys.service.updateClient(tx, params.clientId, { status: 'suspended' });
        if (!changed) throw cannot(`API client ${params.clientId} no longer exists.`);
        if (changed.before.status === 'suspended') throw cannot(`API client ${params.clientId} is already suspended.`);
        await apiKeys.service.assertAdminRemains(tx);
        return {
          result: { clientId: params.clientId, status: changed.after.status },
          audit: [{ operation: 'api-client.suspend', targetType: 'api-client', targetId: params.clientId, reason: actionReason(action), before: changed.before, after: changed.after }],
        };
      },
      refresh: () => [apiKeys.verifier],
    },

    set_maintenance_mode: {
      async check(params, now) {
        untilOf(params.until, params.mode, now);
      },
      async run(tx, params, action) {
        const now = Date.now();
        // An `until` that passed while the action waited for approvals would switch back at once.
        const until = untilOf(params.until, params.mode, now);
        const { before, after } = await maintenance.setMode(
          tx,
          { mode: params.mode, reason: actionReason(action).slice(0, 500), actor: { type: action.actor.type, id: action.actor.id, keyId: action.actor.keyId }, until },
          now,
        );
        return {
          result: { mode: params.mode, until: until?.toISOString() ?? null, previousMode: before?.mode ?? 'normal' },
          audit: [{ operation: 'maintenance.state.change', targetType: 'maintenance', targetId: 'mode', reason: actionReason(action), before, after }],
        };
      },
      refresh: () => [maintenance.entry],
    },

    disable_flag: {
      async check(params) {
        if (!(await flags.service.byKey(params.flagKey))) throw invalidParam('flagKey', 'names no feature flag');
      },
      async run(tx, params, action) {
        const changed = await flags.service.update(tx, params.flagKey, { enabled: false });
        if (!changed) throw cannot(`Feature flag '${params.flagKey}' no longer exists.`);
        return {
          result: { flagKey: params.flagKey, wasEnabled: changed.before.enabled, version: changed.after.version },
          audit: [{ operation: 'feature-flag.update', targetType: 'feature-flag', targetId: params.flagKey, reason: actionReason(action), before: changed.before, after: changed.after }],
        };
      },
      refresh: () => [flags.state],
    },
  };
}
