import { isIP } from 'node:net';

/**
 * Which limit applies to a request: pure functions over an in-memory index of the enabled rules,
 * built once per state-cache reload. No I/O, no Fastify.
 *
 * Precedence (first that matches wins; "exact" means a rule naming this key, client or IP):
 *  1. `api_key` rule for this key id
 *  2. the client's own limit (`rateLimit` on the API client, from the api-keys pack)
 *  3. `client` rule for this client id
 *  4. `route` rule matching the method and path (most specific pattern first)
 *  5. `ip` rule for this address
 *  6. `api_key` rule `*` (each key)
 *  7. `client` rule `*` (each client)
 *  8. `ip` rule `*` (each address)
 *  9. `global` rule
 * 10. the default from RATE_LIMIT_DEFAULT_MAX / RATE_LIMIT_DEFAULT_WINDOW_SECONDS (0: none)
 */

export const RULE_SCOPES = ['global', 'ip', 'api_key', 'client', 'route'] as const;
export type RuleScope = (typeof RULE_SCOPES)[number];

/** What the matcher needs of a rule. */
export interface RuleLike {
  id: number;
  scope: RuleScope;
  match: string;
  route: string | null;
  max: number;
  windowSeconds: number;
}

export interface Limit {
  max: number;
  windowSeconds: number;
}

/** The limit one request is counted against. */
export interface AppliedLimit extends Limit {
  /** Policy name in `RateLimit-Policy` and the status endpoint: `rule-12`, `client-5` (the client's own limit) or `default`. */
  policy: string;
  /** Metric label and status field: the rule's scope; `default` for the env default. */
  scope: RuleScope | 'default';
  ruleId: number | null;
  route: string | null;
  /** Who is counted: `ip:<addr>`, `api_key:<keyId>` or `client:<id>`. */
  subject: string;
  /**
   * The counter's key: policy, window and subject. A rule's new window starts new counters, and
   * a deleted rule's counters are never read again (they expire by themselves).
   */
  counterKey: string;
  /** The `RateLimit-Policy` header value, built once per limit. */
  policyHeader: string;
}

/** What is known about who is calling (any part may be unknown). */
export interface CallerFacts {
  /** Full address, canonical form: what `ip` rules match. */
  ip: string | null;
  /** Address as counted (IPv6 grouped by /64, so one host cannot rotate through its prefix). */
  ipSubject: string | null;
  keyId: string | null;
  clientId: number | null;
  clientLimit: Limit | null;
}

export interface RouteTarget {
  method: string;
  path: string;
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * Route patterns: `[METHOD ]/path[*]`. Without `*` the path must be equal (a trailing slash is
 * ignored, as the router does); with a trailing `*` it is a prefix. No method: any method. `GET`
 * also covers HEAD, which Fastify answers with the GET handler (a GET without the body,
 * RFC 9110 §9.3.2): otherwise HEAD would be an unlimited way to the same work.
 * Matched against the request path (percent-decoded, query string removed), so `GET /system/flags*`
 * covers `/system/flags` and `/system/flags/dark-mode`, and unknown paths (404s) can have rules too.
 */
const ROUTE_PATTERN = /^(?:([A-Za-z]+) +)?(\/[^\s*?#]*)(\*)?$/;

export interface CompiledRoute {
  method: string | null;
  path: string;
  prefix: boolean;
}

/** The normalised pattern (method upper-cased, single space), or an error message. */
export function parseRoutePattern(pattern: string): { normalized: string; compiled: CompiledRoute } | { error: string } {
  const m = ROUTE_PATTERN.exec(pattern.trim());
  if (!m) return { error: "must look like '/path', '/prefix*' or 'GET /path*'" };
  const method = m[1]?.toUpperCase() ?? null;
  if (method !== null && !(METHODS as readonly string[]).includes(method)) return { error: `unknown method '${m[1]}'` };
  const path = m[2]!;
  const prefix = m[3] === '*';
  const normalized = `${method ? `${method} ` : ''}${path}${prefix ? '*' : ''}`;
  return { normalized, compiled: { method, path: !prefix && path.length > 1 ? path.replace(/\/+$/, '') || '/' : path, prefix } };
}

/** Whether a rule's method covers the request's: itself, and GET also HEAD. */
export function methodCovers(ruleMethod: string, requestMethod: string): boolean {
  return ruleMethod === requestMethod || (ruleMethod === 'GET' && requestMethod === 'HEAD');
}

export function routeMatches(route: CompiledRoute, target: RouteTarget): boolean {
  if (route.method !== null && !methodCovers(route.method, target.method)) return false;
  if (route.prefix) return target.path.startsWith(route.path);
  const path = target.path.length > 1 && target.path.endsWith('/') ? target.path.slice(0, -1) : target.path;
  return path === route.path;
}

/** Canonical form of an address for `ip` rules (lower case, IPv4-mapped IPv6 as IPv4). */
export function canonicalIp(ip: string): string | null {
  const lower = ip.trim().toLowerCase();
  const v = isIP(lower);
  if (v === 4) return lower;
  if (v !== 6) return null;
  if (lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4) return lower.slice(7);
  // Expand and re-compress so `2001:DB8::1` and `2001:db8:0::1` are one key.
  try {
    return new URL(`http://[${lower}]/`).hostname.slice(1, -1);
  } catch {
    return null; // e.g. a zone id (`fe80::1%eth0`), which no client address carries
  }
}

export const KEY_ID = /^[0-9A-Za-z]{12}$/;

/** Why `match` is not valid for `scope` (null when it is): exact values are canonicalised by `normalizeMatch`. */
export function matchError(scope: RuleScope, match: string): string | null {
  if (match === '*') return null;
  switch (scope) {
    case 'global':
    case 'route':
      return `a ${scope} rule matches every caller: use '*'`;
    case 'ip':
      return canonicalIp(match) ? null : "must be an IPv4 or IPv6 address, or '*'";
    case 'api_key':
      return KEY_ID.test(match) ? null : "must be a key id (the 12 characters after 'vhk_'), or '*'";
    case 'client':
      return /^[1-9][0-9]{0,15}$/.test(match) ? null : "must be a client id, or '*'";
  }
}

export function normalizeMatch(scope: RuleScope, match: string): string {
  return scope === 'ip' && match !== '*' ? (canonicalIp(match) ?? match) : match;
}

interface IndexedRoute<R extends RuleLike> {
  rule: R;
  route: CompiledRoute;
}

export interface RuleIndex<R extends RuleLike = RuleLike> {
  readonly apiKey: ReadonlyMap<string, R>;
  readonly client: ReadonlyMap<string, R>;
  readonly ip: ReadonlyMap<string, R>;
  readonly apiKeyAny: R | null;
  readonly clientAny: R | null;
  readonly ipAny: R | null;
  readonly global: R | null;
  /**
   * Most specific first: exact paths before prefixes, longer before shorter, then by method: one
   * method, then GET (which also covers HEAD), then none.
   */
  readonly routes: ReadonlyArray<IndexedRoute<R>>;
  readonly rules: ReadonlyArray<R>;
}

/** How many methods a pattern covers, as a sort key: `HEAD /x` wins over `GET /x` for a HEAD. */
const methodBreadth = (method: string | null): number => (method === null ? 2 : method === 'GET' ? 1 : 0);

/** Builds the lookup structure from the enabled rules (done once per reload, never per request). */
export function buildRuleIndex<R extends RuleLike>(rules: R[]): RuleIndex<R> {
  const apiKey = new Map<string, R>();
  const client = new Map<string, R>();
  const ip = new Map<string, R>();
  let apiKeyAny: R | null = null;
  let clientAny: R | null = null;
  let ipAny: R | null = null;
  let global: R | null = null;
  const routes: IndexedRoute<R>[] = [];
  for (const rule of rules) {
    switch (rule.scope) {
      case 'api_key':
        if (rule.match === '*') apiKeyAny = rule;
        else apiKey.set(rule.match, rule);
        break;
      case 'client':
        if (rule.match === '*') clientAny = rule;
        else client.set(rule.match, rule);
        break;
      case 'ip':
        if (rule.match === '*') ipAny = rule;
        else ip.set(rule.match, rule);
        break;
      case 'global':
        global = rule;
        break;
      case 'route': {
        const parsed = rule.route ? parseRoutePattern(rule.route) : null;
        if (parsed && 'compiled' in parsed) routes.push({ rule, route: parsed.compiled });
        break;
      }
    }
  }
  routes.sort(
    (a, b) =>
      Number(a.route.prefix) - Number(b.route.prefix) ||
      b.route.path.length - a.route.path.length ||
      methodBreadth(a.route.method) - methodBreadth(b.route.method) ||
      a.rule.id - b.rule.id,
  );
  return { apiKey, client, ip, apiKeyAny, clientAny, ipAny, global, routes, rules };
}

/** Who a global, route or default limit counts: the client when authenticated, else the address. */
export function callerSubject(facts: CallerFacts): string | null {
  if (facts.clientId !== null) return `client:${facts.clientId}`;
  if (facts.ipSubject !== null) return `ip:${facts.ipSubject}`;
  return null;
}

function applied(policy: string, scope: AppliedLimit['scope'], ruleId: number | null, route: string | null, limit: Limit, subject: string): AppliedLimit {
  return {
    policy,
    scope,
    ruleId,
    route,
    max: limit.max,
    windowSeconds: limit.windowSeconds,
    subject,
    counterKey: `${policy}:${limit.windowSeconds}:${subject}`,
    policyHeader: `"${policy}";q=${limit.max};w=${limit.windowSeconds}`,
  };
}

export const fromRule = (rule: RuleLike, subject: string): AppliedLimit => applied(`rule-${rule.id}`, rule.scope, rule.id, rule.route, rule, subject);

/** The first route rule matching `target`, if any. */
export function routeRuleFor<R extends RuleLike>(index: RuleIndex<R>, target: RouteTarget): R | null {
  for (const { rule, route } of index.routes) if (routeMatches(route, target)) return rule;
  return null;
}

/**
 * The limit a request is counted against, in the precedence order above; null when nothing
 * applies (no rule matches and the default is off). `target` null: a request on a path no route
 * rule covers.
 */
export function resolveLimit(index: RuleIndex, facts: CallerFacts, target: RouteTarget | null, defaultLimit: Limit | null): AppliedLimit | null {
  const { keyId, clientId, ip, ipSubject } = facts;
  if (keyId !== null) {
    const rule = index.apiKey.get(keyId);
    if (rule) return fromRule(rule, `api_key:${keyId}`);
  }
  if (clientId !== null) {
    if (facts.clientLimit) return applied(`client-${clientId}`, 'client', null, null, facts.clientLimit, `client:${clientId}`);
    const rule = index.client.get(String(clientId));
    if (rule) return fromRule(rule, `client:${clientId}`);
  }
  const caller = callerSubject(facts);
  if (target !== null && caller !== null && index.routes.length > 0) {
    const rule = routeRuleFor(index, target);
    if (rule) return fromRule(rule, caller);
  }
  if (ip !== null && ipSubject !== null) {
    const rule = index.ip.get(ip);
    if (rule) return fromRule(rule, `ip:${ipSubject}`);
  }
  if (keyId !== null && index.apiKeyAny) return fromRule(index.apiKeyAny, `api_key:${keyId}`);
  if (clientId !== null && index.clientAny) return fromRule(index.clientAny, `client:${clientId}`);
  if (ipSubject !== null && index.ipAny) return fromRule(index.ipAny, `ip:${ipSubject}`);
  if (caller === null) return null;
  if (index.global) return fromRule(index.global, caller);
  if (defaultLimit) return applied('default', 'default', null, null, defaultLimit, caller);
  return null;
}
