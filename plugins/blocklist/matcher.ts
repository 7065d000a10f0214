import { parseCidr, parseIp, v6Network, type ParsedIp } from '../../src/ip-address.js';
import { Ipv4Index } from './address-index.js';
import { globLiteral, globMatch, isGlob, PrefixIndex, SubstringIndex } from './patterns.js';
import type { RuleSeverity } from './types.js';

export const RULE_TYPES = ['ip', 'cidr', 'user_agent', 'path', 'api_client'] as const;
export type RuleType = (typeof RULE_TYPES)[number];
export type RuleAction = 'block' | 'allow';
export type PolicyMode = 'enforce' | 'monitor';

/** A rule as the matcher holds it: its policy's mode folded in, expiry as epoch ms. */
export interface ActiveRule {
  id: number;
  type: RuleType;
  action: RuleAction;
  /** Canonical value (see service.ts `normaliseRuleValue`). */
  value: string;
  severity: RuleSeverity;
  origin: string;
  policyId: number | null;
  policyName: string | null;
  mode: PolicyMode;
  /** Epoch ms; `Infinity` when the rule never expires. */
  expiresAt: number;
}

/** What one request is matched on; `path` already normalised (patterns.ts `normalisePath`). */
export interface MatchInput {
  ip: ParsedIp | undefined;
  userAgent: string;
  path: string;
  /** The authenticated API client, once known (the later hook); null before authentication. */
  clientId: number | null;
}

export interface Decision {
  /** `block`: refuse (enforce); `monitor`: a monitor-mode policy would have refused; `allow`: an allow rule matched. */
  outcome: 'block' | 'monitor' | 'allow';
  rule: ActiveRule;
}

const SEVERITY_RANK: Record<RuleSeverity, number> = { low: 1, medium: 2, high: 3, critical: 4 };

/** Among blocks: enforce beats monitor, then higher severity, then the older rule. */
export function outranks(a: ActiveRule, b: ActiveRule): boolean {
  if (a.mode !== b.mode) return a.mode === 'enforce';
  const s = SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity];
  if (s !== 0) return s > 0;
  return a.id < b.id;
}

type Visit = (rule: ActiveRule) => void;

/** Text rules found through a literal (Aho-Corasick) and confirmed by a whole-text test. */
interface TextEntry {
  rule: ActiveRule;
  /** null: a substring rule (the literal occurring is the match); else the glob to confirm. */
  glob: string | null;
}

/** Bounded memo of text → candidate rules: user agents and paths repeat, attackers' included. */
const CANDIDATE_CACHE_MAX = 10_000;
const CACHEABLE_LENGTH = 512;
const NONE: readonly ActiveRule[] = Object.freeze([]);
/**
 * User-agent globs are confirmed on at most this many leading characters (substring rules see the
 * whole text). A glob costs O(text × glob) at worst; a user agent is client-chosen anyway, so
 * padding one past this gains an evader nothing that changing it would not. Paths are matched
 * whole (a path rule is an access boundary; Node's 16 KiB header limit bounds them).
 */
export const UA_GLOB_TEXT_MAX = 4096;

/** Glob confirmations run, for tests: each candidate glob is tried at most once per text (twice for a path's trailing-slash form). */
export const matcherStats = { globTests: 0 };

/**
 * Every rule, allow and block, indexed for lookup: IPv4 addresses and networks in the flat
 * per-/16 index (address-index.ts); IPv6 addresses in a Map and networks in one Map per prefix
 * length in use (few: /32, /48, /56, /64 in practice); user-agent and path patterns behind
 * one-pass literal indexes, each glob confirmed on the whole text; clients in a Map.
 */
class RuleSet {
  readonly v4 = new Ipv4Index<ActiveRule>();
  readonly v6Exact = new Map<string, ActiveRule[]>();
  readonly v6Cidr = new Map<number, Map<string, ActiveRule[]>>();
  v6Lengths: number[] = [];
  readonly uaLiterals = new SubstringIndex<TextEntry>();
  readonly uaAlways: TextEntry[] = [];
  readonly pathPrefixes = new PrefixIndex<ActiveRule>();
  readonly pathLiterals = new SubstringIndex<TextEntry>();
  readonly pathAlways: TextEntry[] = [];
  readonly clients = new Map<number, ActiveRule[]>();
  private readonly uaCache = new Map<string, readonly ActiveRule[]>();
  private readonly pathCache = new Map<string, readonly ActiveRule[]>();
  size = 0;

  add(rule: ActiveRule): void {
    this.size++;
    switch (rule.type) {
      case 'ip': {
        const ip = parseIp(rule.value);
        if (!ip) return;
        if (ip.v === 4) this.v4.add(ip.n, 32, rule);
        else push(this.v6Exact, v6Network(ip.g, 128), rule);
        return;
      }
      case 'cidr': {
        const c = parseCidr(rule.value);
        if ('error' in c) return;
        if (c.ip.v === 4) this.v4.add(c.ip.n, c.prefix, rule);
        else push(mapFor(this.v6Cidr, c.prefix), v6Network(c.ip.g, c.prefix), rule);
        return;
      }
      case 'user_agent': {
        const value = rule.value.toLowerCase();
        addText(this.uaLiterals, this.uaAlways, value, rule, false);
        return;
      }
      case 'path':
        if (isGlob(rule.value)) addText(this.pathLiterals, this.pathAlways, rule.value, rule, true);
        else this.pathPrefixes.add(rule.value, rule);
        return;
      case 'api_client':
        push(this.clients, Number(rule.value), rule);
        return;
    }
  }

  seal(): void {
    this.v4.seal();
    this.v6Lengths = [...this.v6Cidr.keys()].sort((a, b) => b - a);
    this.uaLiterals.build();
    this.pathLiterals.build();
  }

  /** Every rule matching the request's address, user agent and path (expiry not checked). */
  visitRequest(input: MatchInput, visit: Visit): void {
    const ip = input.ip;
    if (ip) {
      if (ip.v === 4) {
        this.v4.visit(ip.n, visit);
      } else {
        if (this.v6Exact.size > 0) visitAll(this.v6Exact.get(v6Network(ip.g, 128)), visit);
        for (const len of this.v6Lengths) visitAll(this.v6Cidr.get(len)!.get(v6Network(ip.g, len)), visit);
      }
    }
    if (this.uaLiterals.size > 0 || this.uaAlways.length > 0) {
      const text = input.userAgent;
      visitAll(this.uaCache.get(text) ?? remember(this.uaCache, text, this.uaCandidates(text)), visit);
    }
    if (this.pathPrefixes.size > 0 || this.pathLiterals.size > 0 || this.pathAlways.length > 0) {
      const text = routedPath(input.path);
      visitAll(this.pathCache.get(text) ?? remember(this.pathCache, text, this.pathCandidates(text)), visit);
    }
  }

  visitClient(clientId: number, visit: Visit): void {
    visitAll(this.clients.get(clientId), visit);
  }

  private uaCandidates(userAgent: string): readonly ActiveRule[] {
    const text = userAgent.toLowerCase();
    return textCandidates(this.uaLiterals, this.uaAlways, text, text.length > UA_GLOB_TEXT_MAX ? text.slice(0, UA_GLOB_TEXT_MAX) : text, null, null);
  }

  /**
   * `path` has no trailing slash (`routedPath`); the router serves `path` and `path/` alike, so
   * both spellings are matched: literals and prefixes are scanned over `path/` (which holds every
   * literal and prefix of `path` too), a glob is confirmed on `path`, then on `path/`.
   */
  private pathCandidates(path: string): readonly ActiveRule[] {
    const slashed = path === '/' ? path : `${path}/`;
    const prefixed: ActiveRule[] = [];
    this.pathPrefixes.scan(slashed, (r) => prefixed.push(r));
    return textCandidates(this.pathLiterals, this.pathAlways, slashed, path, slashed === path ? null : slashed, prefixed);
  }
}

/** Memoises a text's candidates (bounded: cleared when full; a full cache means varied traffic anyway). */
function remember(cache: Map<string, readonly ActiveRule[]>, text: string, found: readonly ActiveRule[]): readonly ActiveRule[] {
  if (text.length <= CACHEABLE_LENGTH) {
    if (cache.size >= CANDIDATE_CACHE_MAX) cache.clear();
    cache.set(text, found);
  }
  return found;
}

function addText(literals: SubstringIndex<TextEntry>, always: TextEntry[], value: string, rule: ActiveRule, globOnly: boolean): void {
  if (!isGlob(value)) {
    if (!globOnly) literals.add(value, { rule, glob: null });
    return;
  }
  const literal = globLiteral(value);
  if (literal.length === 0) always.push({ rule, glob: value });
  else literals.add(literal, { rule, glob: value });
}

/** Whether a glob can match `text/` without matching `text`: only if it can end on that slash. */
const endsOpen = (glob: string): boolean => {
  const c = glob.charCodeAt(glob.length - 1);
  return c === 47 /* / */ || c === 42 /* * */ || c === 63 /* ? */;
};

/**
 * The rules whose literal occurs in `scanned` and whose glob (if any) matches `text` (or `alt`).
 * The literal index reports every occurrence, thousands for a long text; each entry is judged
 * once (`tried`), so a request costs one pass plus one glob test per candidate rule: linear in the
 * text, never text × occurrences.
 */
function textCandidates(literals: SubstringIndex<TextEntry>, always: TextEntry[], scanned: string, text: string, alt: string | null, seed: ActiveRule[] | null): readonly ActiveRule[] {
  let found: Set<ActiveRule> | null = seed && seed.length > 0 ? new Set(seed) : null;
  let tried: Set<TextEntry> | null = null;
  const consider = (e: TextEntry) => {
    if (found?.has(e.rule)) return;
    if (e.glob !== null) {
      if (tried?.has(e)) return;
      (tried ??= new Set()).add(e);
      matcherStats.globTests++;
      if (!globMatch(e.glob, text)) {
        if (alt === null || !endsOpen(e.glob)) return;
        matcherStats.globTests++;
        if (!globMatch(e.glob, alt)) return;
      }
    }
    (found ??= new Set()).add(e.rule);
  };
  literals.scan(scanned, consider);
  for (const e of always) consider(e);
  return found ? [...found] : NONE;
}

/** The path the router routes: one trailing slash dropped (`ignoreTrailingSlash`), except the root's. */
export function routedPath(path: string): string {
  return path.length > 1 && path.charCodeAt(path.length - 1) === 47 ? path.slice(0, -1) : path;
}

function push<K>(map: Map<K, ActiveRule[]>, key: K, rule: ActiveRule): void {
  const list = map.get(key);
  if (list) list.push(rule);
  else map.set(key, [rule]);
}

function mapFor<K>(maps: Map<number, Map<K, ActiveRule[]>>, prefix: number): Map<K, ActiveRule[]> {
  let m = maps.get(prefix);
  if (!m) {
    m = new Map();
    maps.set(prefix, m);
  }
  return m;
}

function visitAll(rules: readonly ActiveRule[] | undefined, visit: Visit): void {
  if (rules) for (let i = 0; i < rules.length; i++) visit(rules[i]!);
}

/**
 * The blocklist in memory, rebuilt from the tables on every change (state cache). One index
 * holds allow and block rules together, so a request is looked up once; an allow rule that
 * matches wins over every block, and among blocks `outranks` decides. A rule whose `expiresAt`
 * has passed is skipped at check time, so expiry needs no reload.
 */
export class BlocklistMatcher {
  private readonly index = new RuleSet();
  private readonly byId = new Map<number, ActiveRule>();
  private clientAllow = false;
  private sealed = false;

  /** `seal: false` leaves it open for `build` to add to. */
  constructor(rules: Iterable<ActiveRule> = [], seal = true) {
    for (const rule of rules) this.add(rule);
    if (seal) this.seal();
  }

  /**
   * Builds a matcher a few thousand rules at a time, yielding to the event loop in between:
   * with 100,000 rules a single synchronous build would hold every request for its duration.
   */
  static async build(rules: readonly ActiveRule[], chunk = 5000): Promise<BlocklistMatcher> {
    const matcher = new BlocklistMatcher([], false);
    for (let i = 0; i < rules.length; i += chunk) {
      for (let k = i; k < Math.min(rules.length, i + chunk); k++) matcher.add(rules[k]!);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    matcher.seal();
    return matcher;
  }

  private add(rule: ActiveRule): void {
    if (this.sealed) throw new Error('blocklist matcher is sealed');
    this.byId.set(rule.id, rule);
    this.index.add(rule);
    if (rule.type === 'api_client' && rule.action === 'allow') this.clientAllow = true;
  }

  private seal(): void {
    this.index.seal();
    this.sealed = true;
  }

  /** Active rules by id (the check endpoint and dashboards describe them). */
  get rules(): ReadonlyMap<number, ActiveRule> {
    return this.byId;
  }

  get hasClientRules(): boolean {
    return this.index.clients.size > 0;
  }

  get hasClientAllowRules(): boolean {
    return this.clientAllow;
  }

  get size(): number {
    return this.index.size;
  }

  /** The deciding rule for a request (address, user agent, path; the client when known), or null. */
  decide(input: MatchInput, now: number): Decision | null {
    if (this.index.size === 0) return null;
    scan.start(now);
    this.index.visitRequest(input, keep);
    if (input.clientId !== null && this.hasClientRules) this.index.visitClient(input.clientId, keep);
    return scan.decision();
  }

  /** The deciding `api_client` rule for an authenticated client, or null. */
  decideClient(clientId: number, now: number): Decision | null {
    if (!this.hasClientRules) return null;
    scan.start(now);
    this.index.visitClient(clientId, keep);
    return scan.decision();
  }

  /** The allow rule covering this input, if any (escalation never blocks an allowed address). */
  allows(input: MatchInput, now: number): ActiveRule | null {
    scan.start(now);
    this.index.visitRequest(input, keep);
    const allowed = scan.allowed;
    scan.start(0);
    return allowed;
  }

  /** Every active rule that matches, for the check endpoint's explanation. */
  matching(input: MatchInput, now: number): ActiveRule[] {
    const out = new Set<ActiveRule>();
    const collect: Visit = (r) => {
      if (r.expiresAt > now) out.add(r);
    };
    this.index.visitRequest(input, collect);
    if (input.clientId !== null) this.index.visitClient(input.clientId, collect);
    return [...out];
  }
}

/**
 * The running choice of one scan. Module state rather than closures made per request: the hot
 * path allocates nothing unless a rule matches (a scan is synchronous, so never shared).
 */
const scan = {
  now: 0,
  /** The oldest matching allow rule (any would do; the oldest keeps the answer stable). */
  allowed: null as ActiveRule | null,
  blocking: null as ActiveRule | null,
  start(now: number): void {
    this.now = now;
    this.allowed = null;
    this.blocking = null;
  },
  decision(): Decision | null {
    const { allowed, blocking } = this;
    this.allowed = this.blocking = null;
    if (allowed) return { outcome: 'allow', rule: allowed };
    if (blocking) return { outcome: blocking.mode === 'enforce' ? 'block' : 'monitor', rule: blocking };
    return null;
  },
};
const keep: Visit = (r) => {
  if (r.expiresAt <= scan.now) return;
  if (r.action === 'allow') {
    if (scan.allowed === null || r.id < scan.allowed.id) scan.allowed = r;
  } else if (scan.blocking === null || outranks(r, scan.blocking)) scan.blocking = r;
};

export const EMPTY_MATCHER = new BlocklistMatcher([]);
