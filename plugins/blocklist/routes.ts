import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { hasScope } from '../../src/access.js';
import { PageOf, pageLimit } from '../../src/pagination.js';
import { ProblemError, problemError, problemResponses } from '../../src/problem.js';
import { IdParams } from '../../src/schemas.js';
import { formatIp, parseClientAddress, parseIp } from '../../src/ip-address.js';
import type { Blocklist } from './index.js';
import { BlocklistMatcher, outranks, type ActiveRule, type MatchInput } from './matcher.js';
import { isGlob, normalisePath } from './patterns.js';
import {
  BULK_MAX,
  BulkBody,
  BulkResult,
  CheckQuery,
  CheckResult,
  CreatePolicyBody,
  CreateRuleBody,
  IncidentQuery,
  IncidentSchema,
  PolicyQuery,
  PolicySchema,
  RuleQuery,
  RuleSchema,
  UpdatePolicyBody,
  UpdateRuleBody,
} from './schemas.js';
import { AUTOMATIC_POLICY, invalidField, normaliseRuleValue } from './service.js';

/** Bytes a bulk import may send: 10,000 rules of a few hundred bytes each do not fit `BODY_LIMIT`. */
export const BULK_BODY_LIMIT = 16 * 1024 * 1024;

const TAGS = ['security'];
const POLICIES = '/system/security/policies';
const RULES = '/system/security/blocklist';
const INCIDENTS = '/system/security/incidents';

const policyNotFound = (id: number) => problemError('resource-not-found', `No security policy ${id}`);
const ruleNotFound = (id: number) => problemError('resource-not-found', `No blocklist rule ${id}`);

/** Why a matching rule matches, in words (the check endpoint). */
function why(rule: ActiveRule, input: MatchInput, ipText: string | null): string {
  switch (rule.type) {
    case 'ip':
      return `address ${ipText} is ${rule.value}`;
    case 'cidr':
      return `address ${ipText} is inside ${rule.value}`;
    case 'user_agent':
      return isGlob(rule.value) ? `user agent matches the glob '${rule.value}' (case-insensitive)` : `user agent contains '${rule.value}' (case-insensitive)`;
    case 'path':
      return isGlob(rule.value) ? `normalised path '${input.path}' matches the glob '${rule.value}'` : `normalised path '${input.path}' starts with '${rule.value}'`;
    case 'api_client':
      return `API client ${rule.value}`;
  }
}

type CheckAnswer = Static<typeof CheckResult>;

const ACTIONS_ROUTE = '/system/security/actions';

/**
 * The built-in `automatic` policy holds every escalation, honeypot and action block: deleting or
 * renaming it would lift them all at once (and the kernel recreates it empty), so both are
 * refused; disabling it or switching it to monitor needs an admin and a reason (audited).
 */
function guardAutomaticPolicy(request: FastifyRequest, current: { name: string }, change: { name?: string; enabled?: boolean; mode?: string } | null, reason: string | undefined): void {
  if (current.name !== AUTOMATIC_POLICY) return;
  if (change === null) {
    throw problemError(
      'conflict',
      `The built-in policy '${AUTOMATIC_POLICY}' holds every automatic, escalation, honeypot and action block and cannot be deleted. End one block with DELETE ${RULES}/{id} (an action's block with an approved unblock_ip action at POST ${ACTIONS_ROUTE}).`,
    );
  }
  if (change.name !== undefined && change.name !== AUTOMATIC_POLICY) throw problemError('conflict', `The built-in policy '${AUTOMATIC_POLICY}' cannot be renamed: the kernel finds it by name.`);
  if (change.enabled === false || change.mode === 'monitor') {
    if (!hasScope(request, 'admin')) {
      throw new ProblemError('forbidden', {
        detail: `Disabling the built-in policy '${AUTOMATIC_POLICY}' or switching it to monitor lifts every automatic and approved block: it needs the admin scope and a reason.`,
        extensions: { requiredScope: 'admin' },
      });
    }
    if (!reason) throw invalidField('/reason', `is required to disable the '${AUTOMATIC_POLICY}' policy or switch it to monitor`);
  }
}

/**
 * A rule made by an approved `block_ip` action is lifted the same way, by an approved
 * `unblock_ip` action: one `security:write` key must not undo what N approvers decided. An
 * admin may still change or delete it (audited like any rule write).
 */
function guardActionRule(request: FastifyRequest, current: { id: number; origin: string }): void {
  if (current.origin !== 'action' || hasScope(request, 'admin')) return;
  throw new ProblemError('conflict', {
    detail: `Rule ${current.id} was made by an approved block_ip action; lift it with an unblock_ip action (POST ${ACTIONS_ROUTE}), approved like the block, or as an admin.`,
    extensions: { ruleId: current.id, origin: current.origin },
  });
}

/** What the lockout guard needs of a rule being written (an API rule or a bulk item). */
interface Written {
  id: number;
  type: ActiveRule['type'];
  action: ActiveRule['action'];
  value: string;
  policyId: number | null;
  expiresAt: number;
}

/**
 * The rule among `written` that would block the request writing it, or null: matched on the
 * caller's address, user agent and client, with the path of this request and of the blocklist
 * API (listing, and each written rule's own URL, the one that deletes it), so that one rule
 * cannot lock the operator out of the API that would undo it. Not a lockout when
 * BLOCKLIST_ALWAYS_ALLOW or an allow rule already in force (other than those written) covers the
 * caller, or when the rule's policy is disabled or in monitor mode.
 */
function lockout({ state, alwaysAllow }: Blocklist, request: FastifyRequest, written: Written[]): ActiveRule | null {
  const ip = parseClientAddress(request.ip);
  if (alwaysAllow.covers(ip)) return null;
  const now = Date.now();
  const { policies, matcher: current } = state.get();
  const blocks: ActiveRule[] = [];
  for (const w of written) {
    if (w.action !== 'block' || w.expiresAt <= now) continue;
    // A policy created since the last reload is not known yet: taken as enforcing.
    const policy = w.policyId === null ? undefined : policies.get(w.policyId);
    if (policy && (!policy.enabled || policy.mode !== 'enforce')) continue;
    blocks.push({ ...w, severity: 'medium', origin: 'manual', policyName: null, mode: 'enforce' });
  }
  if (blocks.length === 0) return null;
  const candidate = new BlocklistMatcher(blocks);
  const ids = new Set(written.map((w) => w.id));
  const base = { ip, userAgent: request.headers['user-agent'] ?? '', clientId: request.caller?.clientId ?? null };
  const paths = new Set([normalisePath(request.url), RULES, ...written.map((w) => `${RULES}/${w.id}`)]);
  for (const path of paths) {
    const input: MatchInput = { ...base, path };
    const decision = candidate.decide(input, now);
    if (decision?.outcome !== 'block') continue;
    if (current.matching(input, now).some((r) => r.action === 'allow' && !ids.has(r.id))) continue;
    return decision.rule;
  }
  return null;
}

const wouldLockOut = (rule: ActiveRule) =>
  new ProblemError('conflict', {
    detail: `This ${rule.type} rule ('${rule.value}') would block the request that writes it, and so lock its author out of this API. Nothing was written. Send "force": true to write it anyway (audited), or add an allow rule for your own address first.`,
    extensions: { wouldBlock: { ruleId: rule.id, type: rule.type, value: rule.value } },
  });

const fromRule = (r: { id: number; type: ActiveRule['type']; action: ActiveRule['action']; value: string; policyId: number | null; expiresAt: string | null }): Written => ({
  id: r.id,
  type: r.type,
  action: r.action,
  value: r.value,
  policyId: r.policyId,
  expiresAt: r.expiresAt === null ? Infinity : Date.parse(r.expiresAt),
});

/**
 * Policies and rules CRUD, bulk import, the check endpoint and the incident list. Every write
 * goes through `app.writeThrough` (transaction, audit entry, state notification, local reload).
 * Rule writes are not under the change freeze: blocking an attacker is incident response, which
 * a freeze must not hold up; policy changes (enforcement behaviour) are.
 */
export const blocklistRoutes =
  (blocklist: Blocklist): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { rules: service, state } = blocklist;
    const refresh = { refresh: [state] };

    // ---- policies --------------------------------------------------------------------------

    app.post(
      POLICIES,
      {
        config: { scope: 'security:write', freeze: true },
        schema: { tags: TAGS, summary: 'Create a security policy', body: CreatePolicyBody, response: { 201: PolicySchema, ...problemResponses(400, 401, 403, 409, 415, 423, 503) } },
      },
      async (request, reply) => {
        const policy = await app.writeThrough(request, refresh, async (tx) => {
          const created = await service.createPolicy(tx, request.body);
          return { result: created, audit: { operation: 'security-policy.create', targetType: 'security-policy', targetId: created.id, after: created } };
        });
        return reply.code(201).header('location', `${POLICIES}/${policy.id}`).send(policy);
      },
    );

    app.get(
      POLICIES,
      {
        config: { scope: 'security:read' },
        schema: { tags: TAGS, summary: 'List security policies, oldest first', querystring: PolicyQuery, response: { 200: PageOf(PolicySchema), ...problemResponses(400, 401, 403, 503) } },
      },
      async (request) => service.listPolicies({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${POLICIES}/:id`,
      {
        config: { scope: 'security:read' },
        schema: { tags: TAGS, summary: 'One security policy', params: IdParams, response: { 200: PolicySchema, ...problemResponses(400, 401, 403, 404, 503) } },
      },
      async (request) => {
        const policy = await service.policyById(request.params.id);
        if (!policy) throw policyNotFound(request.params.id);
        return policy;
      },
    );

    app.patch(
      `${POLICIES}/:id`,
      {
        config: { scope: 'security:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Change a security policy (enable or disable it, switch enforce/monitor)',
          params: IdParams,
          body: UpdatePolicyBody,
          response: { 200: PolicySchema, ...problemResponses(400, 401, 403, 404, 409, 415, 423, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const { reason, ...change } = request.body;
        return app.writeThrough(request, refresh, async (tx) => {
          const changed = await service.updatePolicy(tx, id, change, (current) => guardAutomaticPolicy(request, current, change, reason));
          if (!changed) throw policyNotFound(id);
          return { result: changed.after, audit: { operation: 'security-policy.update', targetType: 'security-policy', targetId: id, reason: reason ?? null, before: changed.before, after: changed.after } };
        });
      },
    );

    app.delete(
      `${POLICIES}/:id`,
      {
        config: { scope: 'security:write', freeze: true },
        schema: {
          tags: TAGS,
          summary: 'Delete a security policy and its rules (the built-in `automatic` policy: 409)',
          params: IdParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 401, 403, 404, 409, 423, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        await app.writeThrough(request, refresh, async (tx) => {
          const removed = await service.removePolicy(tx, id, (current) => guardAutomaticPolicy(request, current, null, undefined));
          if (!removed) throw policyNotFound(id);
          return { result: null, audit: { operation: 'security-policy.delete', targetType: 'security-policy', targetId: id, before: { ...removed.policy, rulesRemoved: removed.rulesRemoved } } };
        });
        return reply.code(204).send(null);
      },
    );

    // ---- rules -----------------------------------------------------------------------------

    app.post(
      RULES,
      {
        config: { scope: 'security:write' },
        schema: { tags: TAGS, summary: 'Create a blocklist (or allowlist) rule', body: CreateRuleBody, response: { 201: RuleSchema, ...problemResponses(400, 401, 403, 409, 415, 503) } },
      },
      async (request, reply) => {
        const rule = await app.writeThrough(request, refresh, async (tx) => {
          const created = await service.createRule(tx, request.body);
          // Refused inside the transaction: the insert rolls back.
          const locking = lockout(blocklist, request, [fromRule(created)]);
          if (locking && request.body.force !== true) throw wouldLockOut(locking);
          const after = locking ? { ...created, forced: true } : created;
          return { result: created, audit: { operation: 'blocklist-rule.create', targetType: 'blocklist-rule', targetId: created.id, reason: created.reason || null, after } };
        });
        return reply.code(201).header('location', `${RULES}/${rule.id}`).send(rule);
      },
    );

    app.post(
      `${RULES}/bulk`,
      {
        config: { scope: 'security:write' },
        bodyLimit: BULK_BODY_LIMIT,
        schema: {
          tags: TAGS,
          summary: `Import up to ${BULK_MAX} rules atomically (one bad rule rejects the batch, naming its index)`,
          body: BulkBody,
          response: { 201: BulkResult, ...problemResponses(400, 401, 403, 409, 413, 415, 503) },
        },
      },
      async (request, reply) => {
        const { rules, force } = request.body;
        const ids = await app.writeThrough(request, refresh, async (tx) => {
          const created = await service.createRules(tx, rules);
          const now = Date.now();
          const written = rules.map((r, i): Written => {
            const v = normaliseRuleValue(r.type, r.value);
            const expiresAt = r.ttlSeconds !== undefined ? now + r.ttlSeconds * 1000 : r.expiresAt ? Date.parse(r.expiresAt) : Infinity;
            return { id: created[i]!, type: r.type, action: r.action ?? 'block', value: 'value' in v ? v.value : r.value, policyId: r.policyId ?? null, expiresAt };
          });
          const locking = lockout(blocklist, request, written);
          if (locking && force !== true) throw wouldLockOut(locking);
          const byType: Record<string, number> = {};
          for (const r of rules) byType[r.type] = (byType[r.type] ?? 0) + 1;
          // One entry summarising the import, not one per rule.
          const summary = { created: created.length, firstId: created[0] ?? null, lastId: created[created.length - 1] ?? null, byType };
          return { result: created, audit: { operation: 'blocklist-rule.bulk-import', targetType: 'blocklist-rule', targetId: null, after: locking ? { ...summary, forced: true, lockingRuleId: locking.id } : summary } };
        });
        return reply.code(201).send({ created: ids.length, ids });
      },
    );

    app.get(
      RULES,
      {
        config: { scope: 'security:read' },
        schema: {
          tags: TAGS,
          summary: 'List blocklist rules, newest first (filters: type, action, origin, policyId, value, active)',
          querystring: RuleQuery,
          response: { 200: PageOf(RuleSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.listRules({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${RULES}/check`,
      {
        config: { scope: 'security:read' },
        schema: {
          tags: TAGS,
          summary: 'Explain which rule would decide a request with this address, user agent, path and client, and why',
          querystring: CheckQuery,
          response: { 200: CheckResult, ...problemResponses(400, 401, 403) },
        },
      },
      async (request): Promise<CheckAnswer> => {
        const q = request.query;
        const ip = q.ip === undefined ? undefined : parseIp(q.ip.trim());
        if (q.ip !== undefined && !ip) throw invalidField('/ip', 'is not a valid IPv4 or IPv6 address', 'querystring');
        const ipText = ip ? formatIp(ip) : null;
        const input: MatchInput = { ip, userAgent: q.ua ?? '', path: normalisePath(q.path ?? '/'), clientId: q.clientId ?? null };
        const { matcher } = state.get();
        const now = Date.now();
        const decision = matcher.decide(input, now);
        const matches = matcher
          .matching(input, now)
          .sort((a, b) => (a === decision?.rule ? -1 : b === decision?.rule ? 1 : a.action !== b.action ? (a.action === 'allow' ? -1 : 1) : outranks(a, b) ? -1 : 1));
        let explanation = 'No active rule matches: the request would pass.';
        if (blocklist.alwaysAllow.covers(ip)) {
          const rulesSay = decision ? ` (the rules alone would answer ${decision.outcome}, rule ${decision.rule.id})` : '';
          return {
            decision: 'allow',
            ruleId: null,
            explanation: `Address ${ipText} is in BLOCKLIST_ALWAYS_ALLOW: no rule blocks it${rulesSay}.`,
            input: { ip: ipText, ua: input.userAgent, path: input.path, clientId: input.clientId },
            matches: [],
          };
        }
        if (decision?.outcome === 'allow') explanation = `Allow rule ${decision.rule.id} matches (${why(decision.rule, input, ipText)}); allow rules win over every block.`;
        else if (decision?.outcome === 'block') explanation = `Block rule ${decision.rule.id} decides (${why(decision.rule, input, ipText)}; severity ${decision.rule.severity}, policy mode enforce): the request would get 403.`;
        else if (decision?.outcome === 'monitor') explanation = `Rule ${decision.rule.id} matches (${why(decision.rule, input, ipText)}) but its policy is in monitor mode: the request would pass and be counted.`;
        return {
          decision: decision?.outcome ?? 'none',
          ruleId: decision?.rule.id ?? null,
          explanation,
          input: { ip: ipText, ua: input.userAgent, path: input.path, clientId: input.clientId },
          matches: matches.map((r) => ({
            ruleId: r.id,
            type: r.type,
            action: r.action,
            value: r.value,
            severity: r.severity,
            mode: r.mode,
            policyId: r.policyId,
            policyName: r.policyName,
            expiresAt: r.expiresAt === Infinity ? null : new Date(r.expiresAt).toISOString(),
            why: why(r, input, ipText),
          })),
        };
      },
    );

    app.get(
      `${RULES}/:id`,
      {
        config: { scope: 'security:read' },
        schema: { tags: TAGS, summary: 'One blocklist rule', params: IdParams, response: { 200: RuleSchema, ...problemResponses(400, 401, 403, 404, 503) } },
      },
      async (request) => {
        const rule = await service.ruleById(request.params.id);
        if (!rule) throw ruleNotFound(request.params.id);
        return rule;
      },
    );

    app.patch(
      `${RULES}/:id`,
      {
        config: { scope: 'security:write' },
        schema: {
          tags: TAGS,
          summary: 'Change a blocklist rule (action, severity, reason, policy, expiry)',
          params: IdParams,
          body: UpdateRuleBody,
          response: { 200: RuleSchema, ...problemResponses(400, 401, 403, 404, 409, 415, 503) },
        },
      },
      async (request) => {
        const { id } = request.params;
        return app.writeThrough(request, refresh, async (tx) => {
          const changed = await service.updateRule(tx, id, request.body, (current) => guardActionRule(request, current));
          if (!changed) throw ruleNotFound(id);
          const locking = changed.after.active ? lockout(blocklist, request, [fromRule(changed.after)]) : null;
          if (locking && request.body.force !== true) throw wouldLockOut(locking);
          const after = locking ? { ...changed.after, forced: true } : changed.after;
          return { result: changed.after, audit: { operation: 'blocklist-rule.update', targetType: 'blocklist-rule', targetId: id, before: changed.before, after } };
        });
      },
    );

    app.delete(
      `${RULES}/:id`,
      {
        config: { scope: 'security:write' },
        schema: {
          tags: TAGS,
          summary: 'Delete a blocklist rule (one made by an approved action: 409 unless admin; use an unblock_ip action)',
          params: IdParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 401, 403, 404, 409, 503) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        await app.writeThrough(request, refresh, async (tx) => {
          const removed = await service.removeRule(tx, id, (current) => guardActionRule(request, current));
          if (!removed) throw ruleNotFound(id);
          return { result: null, audit: { operation: 'blocklist-rule.delete', targetType: 'blocklist-rule', targetId: id, before: removed } };
        });
        return reply.code(204).send(null);
      },
    );

    // ---- incidents -------------------------------------------------------------------------

    app.get(
      INCIDENTS,
      {
        config: { scope: 'security:read' },
        schema: {
          tags: TAGS,
          summary: 'List security incidents, newest first (filters: kind, severity, sourceIp, since)',
          querystring: IncidentQuery,
          response: { 200: PageOf(IncidentSchema), ...problemResponses(400, 401, 403, 503) },
        },
      },
      async (request) => service.listIncidents({ ...request.query, limit: pageLimit(request.query) }),
    );

    app.get(
      `${INCIDENTS}/:id`,
      {
        config: { scope: 'security:read' },
        schema: { tags: TAGS, summary: 'One security incident', params: IdParams, response: { 200: IncidentSchema, ...problemResponses(400, 401, 403, 404, 503) } },
      },
      async (request) => {
        const incident = await service.incidentById(request.params.id);
        if (!incident) throw problemError('resource-not-found', `No security incident ${request.params.id}`);
        return incident;
      },
    );
  };
