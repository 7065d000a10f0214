import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Counter } from 'prom-client';
import { requestPath } from '../../src/error-handler.js';
import { buildProblem, PROBLEM_CONTENT_TYPE } from '../../src/problem.js';
import type { StateEntry } from '../../src/state-cache.js';
import type { AlwaysAllow } from './always-allow.js';
import { formatIp, formatIpv6, parseClientAddress, type ParsedIp } from '../../src/ip-address.js';
import type { ActiveRule, Decision, MatchInput } from './matcher.js';
import { normalisePath } from './patterns.js';
import type { BlocklistState, RollupRow } from './service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Set by the blocklist's onRequest hook: `allowed` when an allow rule matched (later
     * `api_client` blocks do not apply), or the block deferred until the client is known
     * because an `api_client` allow rule might still let it through.
     */
    blocklist: { allowed: boolean; deferred: Decision | null } | null;
  }
}

export type EventKind = 'blocked' | 'monitored' | 'rate_limited' | 'auth_failure';

/** Rules logged one line each per interval; the others are summed in one line. */
const MAX_RULE_LINES = 50;

/**
 * Per-minute, per-rule, per-address counts of what the blocklist refused or would have refused,
 * and of 429 and 401 answers: a request adds one to a Map entry; every interval the entries
 * become roll-up rows (one batch insert) and one log line per rule. So an attack of a million
 * requests a minute writes a few rows and lines, never a million.
 */
export function createSecurityCounters(deps: {
  /** One aggregated line per rule per interval (the system log). */
  log: (event: string, message: string, data: Record<string, unknown>) => void;
  write: (rows: RollupRow[]) => void;
  maxKeys: number;
}) {
  interface Slot {
    bucket: number;
    kind: EventKind;
    rule: ActiveRule | null;
    address: string | null;
    count: number;
  }
  let slots = new Map<string, Slot>();

  return {
    record(kind: EventKind, rule: ActiveRule | null, address: string | null): void {
      const bucket = Math.floor(Date.now() / 60_000) * 60_000;
      // Past the budget of distinct keys an interval may hold, events still count, unattributed.
      let addr = address;
      let key = `${bucket}|${kind}|${rule?.id ?? ''}|${addr ?? ''}`;
      let slot = slots.get(key);
      if (!slot && slots.size >= deps.maxKeys) {
        addr = null;
        key = `${bucket}|${kind}|${rule?.id ?? ''}|`;
        slot = slots.get(key);
      }
      if (slot) slot.count++;
      else slots.set(key, { bucket, kind, rule, address: addr, count: 1 });
    },

    /** Turns the interval's counts into roll-up rows and one log line per rule. */
    drain(): number {
      if (slots.size === 0) return 0;
      const taken = slots;
      slots = new Map();
      const rows: RollupRow[] = [];
      const perRule = new Map<number, { rule: ActiveRule; kind: EventKind; count: number; addresses: Map<string, number> }>();
      for (const s of taken.values()) {
        rows.push({ bucket: new Date(s.bucket), kind: s.kind, ruleId: s.rule?.id ?? null, ruleType: s.rule?.type ?? null, policyId: s.rule?.policyId ?? null, address: s.address, count: s.count });
        if (s.rule) {
          let agg = perRule.get(s.rule.id);
          if (!agg) perRule.set(s.rule.id, (agg = { rule: s.rule, kind: s.kind, count: 0, addresses: new Map() }));
          agg.count += s.count;
          if (s.address) agg.addresses.set(s.address, (agg.addresses.get(s.address) ?? 0) + s.count);
        }
      }
      // The busiest rules get a line each; the rest share one, so a scan across thousands of
      // rules cannot flood the log either.
      const ranked = [...perRule.values()].sort((a, b) => b.count - a.count);
      const rest = ranked.slice(MAX_RULE_LINES);
      if (rest.length > 0) {
        const requests = rest.reduce((n, r) => n + r.count, 0);
        deps.log('blocklist.matched', `${rest.length} more blocklist rules matched ${requests} requests`, { rules: rest.length, count: requests, ruleIds: rest.slice(0, 100).map((r) => r.rule.id) });
      }
      for (const { rule, kind, count, addresses } of ranked.slice(0, MAX_RULE_LINES)) {
        const top = [...addresses].sort((a, b) => b[1] - a[1]).slice(0, 5);
        deps.log(
          `blocklist.${kind}`,
          kind === 'blocked' ? `blocklist rule ${rule.id} refused ${count} requests` : `blocklist rule ${rule.id} (monitor mode) would have refused ${count} requests`,
          { ruleId: rule.id, ruleType: rule.type, policyId: rule.policyId, mode: rule.mode, count, addresses: addresses.size, topAddresses: top.map(([address, n]) => ({ address, count: n })) },
        );
      }
      deps.write(rows);
      return rows.length;
    },
  };
}
export type SecurityCounters = ReturnType<typeof createSecurityCounters>;

/** Canonical text of a request's address for counters and escalation. */
export const addressText = (ip: ParsedIp | undefined, raw: string): string => (ip ? formatIp(ip) : raw.slice(0, 64));

/**
 * The request's client address for matching, counting and escalation (`parseClientAddress`:
 * ports and zone ids dropped). One that still does not parse is logged once per instance (a
 * trusted proxy writing something odd is a setup mistake worth one line, not one per request);
 * it is counted under its raw text, matched by no address rule and never escalated.
 */
export function clientAddressReader(log: FastifyBaseLogger): (request: FastifyRequest) => ParsedIp | undefined {
  let warned = false;
  return (request) => {
    const ip = parseClientAddress(request.ip);
    if (!ip && !warned) {
      warned = true;
      log.warn({ address: request.ip.slice(0, 64) }, 'client address is not an IP address (check TRUST_PROXY and what the proxy writes); address rules and escalation skip such requests');
    }
    return ip;
  };
}

export interface GuardDeps {
  state: StateEntry<BlocklistState>;
  alwaysAllow: AlwaysAllow;
  clientAddress: (request: FastifyRequest) => ParsedIp | undefined;
  counters: SecurityCounters;
  blocked: Counter<'rule_type' | 'mode'>;
}

const blockedDetail = (rule: ActiveRule) => `A security rule blocks this request (rule ${rule.id}).`;

function refuse(reply: FastifyReply, rule: ActiveRule): FastifyReply {
  return reply.problem('blocked', { detail: blockedDetail(rule), extensions: { ruleId: rule.id } });
}

const hasCredential = (request: FastifyRequest): boolean => request.headers.authorization !== undefined || request.headers['x-api-key'] !== undefined;

/**
 * The blocklist on every request, packs' routes included, answered from memory:
 * - `onRequest`, before authentication (the pack is listed before `api-keys`): address, CIDR,
 *   user-agent and path rules. `request.ip` already honours TRUST_PROXY (Fastify's
 *   `trustProxy` list), so a client's own `X-Forwarded-For` is ignored unless it comes from a
 *   trusted proxy.
 * - `preParsing`, the first hook after every onRequest hook, so after authentication:
 *   `api_client` rules, and blocks deferred because an `api_client` allow rule might apply.
 */
export function addBlocklistHooks(app: FastifyInstance, deps: GuardDeps): void {
  const { state, counters, blocked, alwaysAllow, clientAddress } = deps;
  app.decorateRequest('blocklist', null);

  const onDecision = (request: FastifyRequest, reply: FastifyReply, decision: Decision, ip: ParsedIp | undefined): boolean => {
    const { rule } = decision;
    if (decision.outcome === 'monitor') {
      counters.record('monitored', rule, addressText(ip, request.ip));
      blocked.inc({ rule_type: rule.type, mode: 'monitor' });
      return false;
    }
    counters.record('blocked', rule, addressText(ip, request.ip));
    blocked.inc({ rule_type: rule.type, mode: 'enforce' });
    refuse(reply, rule);
    return true;
  };

  app.addHook('onRequest', function blocklistGuard(request, reply, done) {
    const { matcher } = state.get();
    if (matcher.size === 0) return done();
    const ip = clientAddress(request);
    // BLOCKLIST_ALWAYS_ALLOW: no rule, api_client ones included, refuses these addresses.
    if (alwaysAllow.covers(ip)) {
      request.blocklist = { allowed: true, deferred: null };
      return done();
    }
    const input: MatchInput = { ip, userAgent: request.headers['user-agent'] ?? '', path: normalisePath(request.url), clientId: null };
    const decision = matcher.decide(input, Date.now());
    if (decision === null) return done();
    if (decision.outcome === 'allow') {
      request.blocklist = { allowed: true, deferred: null };
      return done();
    }
    if (decision.outcome === 'block' && matcher.hasClientAllowRules && hasCredential(request)) {
      request.blocklist = { allowed: false, deferred: decision };
      return done();
    }
    if (!onDecision(request, reply, decision, ip)) done();
  });

  // A deferred block whose request was refused before preParsing (a bad key: 401; a rate limit:
  // 429) is still a blocked request: answered as the 403 it would have been, so a blocked
  // address learns nothing about keys by sending them.
  app.addHook('onSend', function blocklistDeferredRefusal(request, reply, payload, done) {
    const deferred = request.blocklist?.deferred;
    if (!deferred) return done(null, payload);
    request.blocklist = { allowed: false, deferred: null };
    const { rule } = deferred;
    counters.record('blocked', rule, addressText(clientAddress(request), request.ip));
    blocked.inc({ rule_type: rule.type, mode: 'enforce' });
    reply.removeHeader('www-authenticate');
    reply.removeHeader('retry-after');
    reply.code(403).type(PROBLEM_CONTENT_TYPE);
    reply.problemKind = 'blocked';
    const body = buildProblem('blocked', { instance: requestPath(request.url), correlationId: request.id }, { detail: blockedDetail(rule), extensions: { ruleId: rule.id } });
    done(null, JSON.stringify(body));
  });

  app.addHook('preParsing', function blocklistClientGuard(request, reply, payload, done) {
    const mark = request.blocklist;
    if (mark?.allowed) return done(null, payload);
    const { matcher } = state.get();
    const clientId = request.caller?.clientId ?? null;
    if (mark?.deferred) {
      const deferred = mark.deferred;
      mark.deferred = null;
      const client = clientId === null ? null : matcher.decideClient(clientId, Date.now());
      if (client?.outcome === 'allow') return done(null, payload);
      // The address block stands (or a client block outranks it).
      const decision = client && client.outcome !== 'monitor' ? client : deferred;
      onDecision(request, reply, decision, clientAddress(request));
      return;
    }
    if (clientId === null || !matcher.hasClientRules) return done(null, payload);
    const decision = matcher.decideClient(clientId, Date.now());
    if (decision === null || decision.outcome === 'allow') return done(null, payload);
    if (!onDecision(request, reply, decision, clientAddress(request))) done(null, payload);
  });
}

export interface EscalationSettings {
  threshold: number;
  windowSeconds: number;
}

export interface EscalationDeps {
  rateLimit: EscalationSettings;
  authFailure: EscalationSettings;
  state: StateEntry<BlocklistState>;
  counters: SecurityCounters;
  /** Writes the block (in the background); resolves when done, rejects on failure. */
  escalate(address: string, origin: 'rate_limit' | 'auth_failure', count: number, windowSeconds: number): Promise<void>;
  log: FastifyBaseLogger;
  alwaysAllow: AlwaysAllow;
  clientAddress: (request: FastifyRequest) => ParsedIp | undefined;
  /** Addresses tracked at once per kind; past it the oldest window is forgotten. */
  maxTracked: number;
}

/**
 * Repeated 429s and 401s from one address (an IPv6 /64) become a temporary block: an `onResponse`
 * hook counts them per address in a fixed window (per instance: each instance sees its own share of the
 * traffic; with N instances behind a balancer an address may get up to N × threshold before
 * one of them blocks it, and the block then applies everywhere). Crossing the threshold starts
 * one background write per address (never awaited by a request); addresses an allow rule
 * covers are never escalated.
 */
export function addEscalationHook(app: FastifyInstance, deps: EscalationDeps): { pending(): Promise<void> } {
  const windows = { rate_limit: new Map<string, { start: number; count: number }>(), auth_failure: new Map<string, { start: number; count: number }>() };
  const inFlight = new Map<string, Promise<void>>();

  const note = (origin: 'rate_limit' | 'auth_failure', request: FastifyRequest) => {
    const ip = deps.clientAddress(request);
    deps.counters.record(origin === 'rate_limit' ? 'rate_limited' : 'auth_failure', null, addressText(ip, request.ip));
    const settings = origin === 'rate_limit' ? deps.rateLimit : deps.authFailure;
    if (settings.threshold <= 0 || !ip || deps.alwaysAllow.covers(ip)) return;
    // An IPv6 client usually holds a whole /64 and can change address within it at will: it is
    // counted, and blocked, as that /64 (as the rate limiter counts it).
    const address = ip.v === 4 ? formatIp(ip) : `${formatIpv6(ip.g.map((x, i) => (i < 4 ? x : 0)))}/64`;
    const map = windows[origin];
    const now = Date.now();
    let w = map.get(address);
    if (!w || now - w.start >= settings.windowSeconds * 1000) {
      if (!w && map.size >= deps.maxTracked) map.delete(map.keys().next().value!);
      w = { start: now, count: 0 };
      map.set(address, w);
    }
    w.count++;
    if (w.count < settings.threshold) return;
    const key = `${origin}|${address}`;
    if (inFlight.has(key)) return;
    const matcher = deps.state.get().matcher;
    if (matcher.allows({ ip, userAgent: '', path: '/', clientId: null }, now)) return;
    const count = w.count;
    map.delete(address);
    const job = deps
      .escalate(address, origin, count, settings.windowSeconds)
      .catch((err: unknown) => deps.log.warn({ address, origin, err: { message: err instanceof Error ? err.message : String(err) } }, 'could not write an escalation block; will try again at the next threshold'))
      .finally(() => inFlight.delete(key));
    inFlight.set(key, job);
  };

  app.addHook('onResponse', function blocklistEscalation(request, reply, done) {
    const status = reply.statusCode;
    if (status === 429) note('rate_limit', request);
    else if (status === 401) note('auth_failure', request);
    done();
  });

  return { pending: async () => void (await Promise.all(inFlight.values())) };
}
