import type { DbOrTx } from '../../db/client.js';
import type { StateEntry } from '../../src/state-cache.js';

/**
 * What the blocklist pack (TQ) offers the other security packs: the approval workflow (TR)
 * blocks and unblocks addresses, honeypots (TS) block their sources and record incidents, the
 * dashboard (TT) reads the figures. Decorated as `app.blocklist`.
 */

export type RuleSeverity = 'low' | 'medium' | 'high' | 'critical';
/** Who made a rule (CrowdSec calls this a decision's origin). */
export type RuleOrigin = 'manual' | 'honeypot' | 'rate_limit' | 'auth_failure' | 'action' | 'import';

export interface BlockAddressInput {
  /** An IPv4 or IPv6 address or CIDR; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is stored as IPv4. */
  address: string;
  reason: string;
  severity: RuleSeverity;
  origin: RuleOrigin;
  /** Lifetime in seconds; `null`: until removed. */
  ttlSeconds: number | null;
  /**
   * Repeat offenders: the lifetime doubles for each earlier rule of this origin for this address
   * (within the look-back and cap the blocklist pack documents).
   */
  escalate?: boolean;
  /** The policy to put the rule in; by default the built-in policy for automatic rules. */
  policyId?: number | null;
}

export interface BlockedAddress {
  ruleId: number;
  expiresAt: Date | null;
  /** 1 for a first offence, 2 for the second, ... (what `escalate` doubled by). */
  offence: number;
}

export interface SecurityIncidentInput {
  /** e.g. `honeypot_hit`, `canary_key`, `escalation`. */
  kind: string;
  severity: RuleSeverity;
  sourceIp: string | null;
  /** One line for people; no secrets (sanitise headers and keys before passing them). */
  summary: string;
  details: Record<string, unknown>;
  ruleId?: number | null;
}

/** The blocklist's share of `GET /system/security/dashboard` for `[since, until)`. */
export interface BlocklistFigures {
  blocked: { total: number; byRuleType: Record<string, number>; byPolicy: Array<{ policyId: number | null; name: string | null; count: number }> };
  /** Requests a monitor-mode policy would have blocked. */
  monitored: number;
  rateLimited: number;
  authFailures: number;
  /** Addresses with the most blocked, rate-limited and failed-authentication requests. */
  topAddresses: Array<{ address: string; blocked: number; rateLimited: number; authFailures: number }>;
  activeRules: { total: number; byType: Record<string, number>; byOrigin: Record<string, number> };
  recentIncidents: Array<{ id: number; kind: string; severity: RuleSeverity; sourceIp: string | null; summary: string; createdAt: string }>;
}

export interface BlocklistService {
  /** The in-memory rules; pass it to `app.writeThrough({ refresh: [...] })` after a rule write. */
  readonly entry: Pick<StateEntry<unknown>, 'name' | 'reload'>;
  /** Adds (or extends) a block rule for an address inside the caller's transaction. */
  blockAddress(tx: DbOrTx, input: BlockAddressInput): Promise<BlockedAddress>;
  /** Ends every active block rule whose value is exactly this address or CIDR. */
  unblockAddress(tx: DbOrTx, address: string): Promise<{ removedRuleIds: number[] }>;
  recordIncident(tx: DbOrTx, input: SecurityIncidentInput): Promise<{ id: number }>;
  dashboardFigures(since: Date, until: Date): Promise<BlocklistFigures>;
}

declare module 'fastify' {
  interface FastifyInstance {
    blocklist: BlocklistService;
  }
}
