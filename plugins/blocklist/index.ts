import { Counter, Gauge } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import type { Actor } from '../../src/audit/writer.js';
import { definePack } from '../../src/pack.js';
import type { StateEntry } from '../../src/state-cache.js';
import { parseAlwaysAllow, type AlwaysAllow } from './always-allow.js';
import { addBlocklistHooks, addEscalationHook, clientAddressReader, createSecurityCounters } from './hooks.js';
import { blocklistRoutes } from './routes.js';
import { createBlocklistService, EMPTY_STATE, escalationSeverity, type BlocklistRuleService, type BlocklistState, type RollupRow } from './service.js';
import { blocklistSnapshotSections } from './snapshot.js';
import { securityEventRollups, securityIncidents } from './table.js';
import type { BlocklistService } from './types.js';

/** The pack's own handle (routes, tests, the bench); other packs use `app.blocklist` (types.ts). */
export interface Blocklist {
  rules: BlocklistRuleService;
  /** The compiled rules and policies in memory, refreshed on every instance on change. */
  state: StateEntry<BlocklistState>;
  /** Writes the counts gathered so far (also runs every BLOCKLIST_EVENT_INTERVAL_MS and at close). */
  flushEvents(): Promise<void>;
  /** Resolves when every escalation write started so far has finished. */
  escalations(): Promise<void>;
  /** BLOCKLIST_ALWAYS_ALLOW, parsed. */
  alwaysAllow: AlwaysAllow;
}

declare module 'fastify' {
  interface FastifyInstance {
    blocklistRules: Blocklist;
  }
}

/** Security scopes: declared here, used by the other security packs (actions, honeypots, dashboard) too. */
const scopes = {
  'security:read': 'Read security policies, blocklist rules, incidents and the security dashboard',
  'security:write': 'Create, change and delete security policies and blocklist rules, and other security settings',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/** Who automatic blocks are audited as. */
const ESCALATION_ACTOR: Actor = { type: 'system', id: 'blocklist', keyId: null };

/** Distinct (minute, kind, rule, address) counters one interval may hold before addresses go unattributed. */
const MAX_EVENT_KEYS = 5_000;
/** Addresses whose 429s/401s are being counted at once, per kind. */
const MAX_TRACKED_ADDRESSES = 100_000;

/**
 * TQ: security policies and the blocklist. Rules (addresses, networks, user agents, paths, API
 * clients; allow rules win) are matched in memory on every request before authentication;
 * blocks are counted per rule per minute, never logged per request; repeated 429s and 401s
 * escalate to temporary blocks. Decorates `app.blocklist` for the other security packs.
 */
export default definePack({
  name: 'blocklist',
  code: 'TQ',
  description: 'Security policies (enforce/monitor) and blocklist rules by IP, CIDR, user agent, path and API client, with allow rules, expiry, bulk import and escalation of repeated 429/401',
  scopes,
  dependencies: ['system-log'],
  async register(app) {
    const env = app.env;
    const alwaysAllow = parseAlwaysAllow(env.BLOCKLIST_ALWAYS_ALLOW);
    const log = app.log.child({ pack: 'blocklist' });
    if (alwaysAllow.entries.length > 0) log.info({ alwaysAllow: alwaysAllow.entries }, 'BLOCKLIST_ALWAYS_ALLOW: these addresses bypass every blocklist rule');
    const clientAddress = clientAddressReader(log);
    const rules = createBlocklistService({
      db: app.db,
      escalation: { lookbackSeconds: env.BLOCKLIST_ESCALATION_LOOKBACK_DAYS * 86_400, maxTtlSeconds: env.BLOCKLIST_ESCALATION_MAX_TTL_SECONDS },
    });
    await rules.ensureAutomaticPolicy();
    // The loader sees the state it replaces, to keep it when the tables have not changed.
    const state: StateEntry<BlocklistState> = app.stateCache.register<BlocklistState>('blocklist', () => rules.loadState(state.get()), EMPTY_STATE);

    const blocked = new Counter({
      name: 'valhalla_blocklist_blocked_total',
      help: 'Requests the blocklist refused (mode enforce) or would have refused (mode monitor), by rule type',
      labelNames: ['rule_type', 'mode'],
      registers: [app.metrics],
    });
    const escalated = new Counter({
      name: 'valhalla_blocklist_escalations_total',
      help: 'Automatic blocks written after repeated 429 (rate_limit) or 401 (auth_failure) answers to one address',
      labelNames: ['origin'],
      registers: [app.metrics],
    });
    new Gauge({
      name: 'valhalla_blocklist_rules_loaded',
      help: 'Active blocklist rules held in memory by this instance',
      registers: [app.metrics],
      collect() {
        this.set(state.get().matcher.size);
      },
    });

    const writer = app.batchWriters.create<RollupRow>({ name: 'security_event_rollups', write: (rows) => rules.insertRollups(rows) });
    const counters = createSecurityCounters({
      log: (event, message, data) => app.systemLog.write({ level: 'warn', source: 'security', event, message, data }),
      write: (rows) => {
        for (const row of rows) writer.push(row);
      },
      maxKeys: MAX_EVENT_KEYS,
    });
    const flushEvents = async () => {
      counters.drain();
      await writer.flush();
    };
    const timer = setInterval(() => counters.drain(), env.BLOCKLIST_EVENT_INTERVAL_MS);
    timer.unref();

    addBlocklistHooks(app, { state, counters, blocked, alwaysAllow, clientAddress });

    const escalation = addEscalationHook(app, {
      rateLimit: { threshold: env.BLOCKLIST_RATE_LIMIT_THRESHOLD, windowSeconds: env.BLOCKLIST_RATE_LIMIT_WINDOW_SECONDS },
      authFailure: { threshold: env.BLOCKLIST_AUTH_FAILURE_THRESHOLD, windowSeconds: env.BLOCKLIST_AUTH_FAILURE_WINDOW_SECONDS },
      state,
      counters,
      log,
      alwaysAllow,
      clientAddress,
      maxTracked: MAX_TRACKED_ADDRESSES,
      async escalate(address, origin, count, windowSeconds) {
        const what = origin === 'rate_limit' ? 'rate-limited (429)' : 'failed-authentication (401)';
        const reason = `${count} ${what} answers within ${windowSeconds} s`;
        await app.writeThrough(null, { refresh: [state] }, async (tx) => {
          const block = await rules.blockAddress(tx, { address, reason, severity: 'medium', origin, ttlSeconds: env.BLOCKLIST_ESCALATION_TTL_SECONDS, escalate: true });
          const severity = escalationSeverity(block.offence);
          const incident = await rules.recordIncident(tx, {
            kind: 'escalation',
            severity,
            sourceIp: address,
            summary: `${address} blocked until ${block.expiresAt?.toISOString() ?? 'removed'} after ${reason} (offence ${block.offence})`,
            details: { origin, count, windowSeconds, offence: block.offence, expiresAt: block.expiresAt?.toISOString() ?? null },
            ruleId: block.ruleId,
          });
          const after = { ruleId: block.ruleId, address, origin, offence: block.offence, expiresAt: block.expiresAt?.toISOString() ?? null, incidentId: incident.id };
          return { result: block, audit: { actor: ESCALATION_ACTOR, operation: 'blocklist-rule.escalate', targetType: 'blocklist-rule', targetId: block.ruleId, reason, after } };
        });
        escalated.inc({ origin });
        app.systemLog.write({ level: 'warn', source: 'security', event: 'blocklist.escalated', message: `${address} blocked after ${reason}`, data: { address, origin, count } });
      },
    });

    app.addHook('onClose', async () => {
      clearInterval(timer);
      await escalation.pending();
      await flushEvents();
    });

    app.retention.category({ name: 'security_event_rollups', description: 'Per-minute counts of blocked, monitored, rate-limited and failed-authentication requests', table: securityEventRollups, idColumn: securityEventRollups.id, timeColumn: securityEventRollups.bucket, readScope: 'security:read', defaultRetainDays: 90 });
    app.retention.category({ name: 'security_incidents', description: 'Security incidents (escalations, honeypot hits, canary keys)', table: securityIncidents, idColumn: securityIncidents.id, timeColumn: securityIncidents.createdAt, readScope: 'security:read', defaultRetainDays: 365 });
    for (const section of blocklistSnapshotSections(app.db, app.stateCache, state)) app.snapshots.section(section);

    const service: BlocklistService = {
      entry: state,
      blockAddress: (tx, input) => rules.blockAddress(tx, input),
      unblockAddress: (tx, address) => rules.unblockAddress(tx, address),
      recordIncident: (tx, input) => rules.recordIncident(tx, input),
      dashboardFigures: async (since, until) => {
        await flushEvents();
        return rules.figures(since, until, state.get());
      },
    };
    app.decorate('blocklist', service);
    app.decorate('blocklistRules', { rules, state, flushEvents, escalations: escalation.pending, alwaysAllow } satisfies Blocklist);

    app.overview.add('blocklist', () => {
      const s = state.get();
      return { activeRules: s.matcher.size, policies: s.policies.size, lastLoadMs: Math.round(s.loadMs) };
    });
  },
  routes: async (app) => {
    await app.register(blocklistRoutes(app.blocklistRules));
  },
});
