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

/** A rule's position in its matcher's columns. */
type Visit = (at: number) => void;

const SEVERITY_BY_RANK: readonly RuleSeverity[] = ['low', 'low', 'medium', 'high', 'critical'];

/**
 * The rules of one matcher as columns: one typed array per field, a rule being a position in
 * them. 100,000 rules are then a dozen objects for the garbage collector to trace, not
 * 100,000 rule objects with their strings: a full collection with the rules held as objects
 * took ~110-170 ms longer than without them (measured with `gc()` in process), paid again at
 * every major collection of a busy kernel. A rule object is made only when one is asked for
 * (a decision, the check endpoint).
 */
class RuleColumns {
  size = 0;
  id = new Float64Array(16);
  type = new Uint8Array(16);
  allow = new Uint8Array(16);
  rank = new Uint8Array(16);
  monitor = new Uint8Array(16);
  expiresAt = new Float64Array(16);
  /** NaN: no policy. */
  policyId = new Float64Array(16);
  origin = new Uint8Array(16);
  /** Index into `policyNames`. */
  policy = new Uint16Array(16);
  /** Every value, end to end; `valueEnd[at]` is where rule `at`'s value ends. */
  private values = '';
  private valueEnd = new Uint32Array(16);
  private pendingValues: string[] = [];
  private readonly origins: string[] = [];
  private readonly policyNames: Array<string | null> = [];
  private readonly policyKeys = new Map<string, number>();

  push(rule: ActiveRule): number {
    const at = this.size++;
    if (at === this.id.length) this.grow(at * 2);
    this.id[at] = rule.id;
    this.type[at] = RULE_TYPES.indexOf(rule.type);
    this.allow[at] = rule.action === 'allow' ? 1 : 0;
    this.rank[at] = SEVERITY_RANK[rule.severity];
    this.monitor[at] = rule.mode === 'monitor' ? 1 : 0;
    this.expiresAt[at] = rule.expiresAt;
    this.policyId[at] = rule.policyId ?? NaN;
    this.origin[at] = wordIndex(this.origins, rule.origin);
    const policyKey = `${rule.policyId ?? ''}\n${rule.policyName ?? ''}`;
    let policy = this.policyKeys.get(policyKey);
    if (policy === undefined) {
      policy = this.policyNames.push(rule.policyName) - 1;
      this.policyKeys.set(policyKey, policy);
    }
    this.policy[at] = policy;
    this.pendingValues.push(rule.value);
    return at;
  }

  /** Joins the values into one string; call once, after the last `push`. */
  seal(): void {
    if (this.size < this.id.length) this.grow(this.size);
    let end = 0;
    for (let at = 0; at < this.size; at++) this.valueEnd[at] = end += this.pendingValues[at]!.length;
    // join makes one flat string (a chain of + would make a rope of 100,000 pieces).
    this.values = this.pendingValues.join('');
    this.pendingValues = [];
  }

  value(at: number): string {
    return this.values.slice(at === 0 ? 0 : this.valueEnd[at - 1], this.valueEnd[at]);
  }

  typeOf(at: number): RuleType {
    return RULE_TYPES[this.type[at]!]!;
  }

  originOf(at: number): string {
    return this.origins[this.origin[at]!]!;
  }

  /** The rule at `at` as an object (made on each call). */
  rule(at: number): ActiveRule {
    const policyId = this.policyId[at]!;
    return {
      id: this.id[at]!,
      type: this.typeOf(at),
      action: this.allow[at] ? 'allow' : 'block',
      value: this.value(at),
      severity: SEVERITY_BY_RANK[this.rank[at]!]!,
      origin: this.originOf(at),
      policyId: Number.isNaN(policyId) ? null : policyId,
      policyName: this.policyNames[this.policy[at]!] ?? null,
      mode: this.monitor[at] ? 'monitor' : 'enforce',
      expiresAt: this.expiresAt[at]!,
    };
  }

  /** Among blocks: enforce beats monitor, then higher severity, then the older rule (`outranks`). */
  outranks(a: number, b: number): boolean {
    if (this.monitor[a] !== this.monitor[b]) return this.monitor[a] === 0;
    if (this.rank[a] !== this.rank[b]) return this.rank[a]! > this.rank[b]!;
    return this.id[a]! < this.id[b]!;
  }

  private grow(capacity: number): void {
    const copy = <A extends Float64Array | Uint8Array | Uint16Array | Uint32Array>(from: A, make: (n: number) => A): A => {
      const to = make(capacity);
      to.set(from.subarray(0, Math.min(from.length, capacity)));
      return to;
    };
    this.id = copy(this.id, (n) => new Float64Array(n));
    this.type = copy(this.type, (n) => new Uint8Array(n));
    this.allow = copy(this.allow, (n) => new Uint8Array(n));
    this.rank = copy(this.rank, (n) => new Uint8Array(n));
    this.monitor = copy(this.monitor, (n) => new Uint8Array(n));
    this.expiresAt = copy(this.expiresAt, (n) => new Float64Array(n));
    this.policyId = copy(this.policyId, (n) => new Float64Array(n));
    this.origin = copy(this.origin, (n) => new Uint8Array(n));
    this.policy = copy(this.policy, (n) => new Uint16Array(n));
    this.valueEnd = copy(this.valueEnd, (n) => new Uint32Array(n));
  }
}

function wordIndex(words: string[], word: string): number {
  const known = words.indexOf(word);
  if (known !== -1) return known;
  if (words.length === 255) throw new Error('the blocklist matcher holds at most 255 distinct rule origins');
  return words.push(word) - 1;
}

/** Bounded memo of text → candidate rules: user agents and paths repeat, attackers' included. */
const CANDIDATE_CACHE_MAX = 10_000;
const CACHEABLE_LENGTH = 512;
const NONE: readonly number[] = Object.freeze([]);
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
 * Every rule, allow and block, indexed by its position in the columns: IPv4 addresses and
 * networks in the flat per-/16 index (address-index.ts); IPv6 addresses in a Map and networks in
 * one Map per prefix length in use (few: /32, /48, /56, /64 in practice); user-agent and path
 * patterns behind one-pass literal indexes, each glob confirmed on the whole text; clients in a Map.
 */
class RuleSet {
  readonly v4 = new Ipv4Index();
  readonly v6Exact = new Map<string, number[]>();
  readonly v6Cidr = new Map<number, Map<string, number[]>>();
  v6Lengths: number[] = [];
  readonly uaLiterals = new SubstringIndex<number>();
  readonly uaAlways: number[] = [];
  readonly pathPrefixes = new PrefixIndex<number>();
  readonly pathLiterals = new SubstringIndex<number>();
  readonly pathAlways: number[] = [];
  readonly clients = new Map<number, number[]>();
  /** The glob each glob text rule is confirmed with (user agents lower-cased), by position. */
  readonly globs = new Map<number, string>();
  private readonly uaCache = new Map<string, readonly number[]>();
  private readonly pathCache = new Map<string, readonly number[]>();
  size = 0;

  add(rule: ActiveRule, at: number): void {
    this.size++;
    switch (rule.type) {
      case 'ip': {
        const ip = parseIp(rule.value);
        if (!ip) return;
        if (ip.v === 4) this.v4.add(ip.n, 32, at);
        else push(this.v6Exact, v6Network(ip.g, 128), at);
        return;
      }
      case 'cidr': {
        const c = parseCidr(rule.value);
        if ('error' in c) return;
        if (c.ip.v === 4) this.v4.add(c.ip.n, c.prefix, at);
        else push(mapFor(this.v6Cidr, c.prefix), v6Network(c.ip.g, c.prefix), at);
        return;
      }
      case 'user_agent':
        this.addText(this.uaLiterals, this.uaAlways, rule.value.toLowerCase(), at, false);
        return;
      case 'path':
        if (isGlob(rule.value)) this.addText(this.pathLiterals, this.pathAlways, rule.value, at, true);
        else this.pathPrefixes.add(rule.value, at);
        return;
      case 'api_client':
        push(this.clients, Number(rule.value), at);
        return;
    }
  }

  private addText(literals: SubstringIndex<number>, always: number[], value: string, at: number, globOnly: boolean): void {
    if (!isGlob(value)) {
      if (!globOnly) literals.add(value, at);
      return;
    }
    this.globs.set(at, value);
    const literal = globLiteral(value);
    if (literal.length === 0) always.push(at);
    else literals.add(literal, at);
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

  private uaCandidates(userAgent: string): readonly number[] {
    const text = userAgent.toLowerCase();
    return this.textCandidates(this.uaLiterals, this.uaAlways, text, text.length > UA_GLOB_TEXT_MAX ? text.slice(0, UA_GLOB_TEXT_MAX) : text, null, null);
  }

  /**
   * `path` has no trailing slash (`routedPath`); the router serves `path` and `path/` alike, so
   * both spellings are matched: literals and prefixes are scanned over `path/` (which holds every
   * literal and prefix of `path` too), a glob is confirmed on `path`, then on `path/`.
   */
  private pathCandidates(path: string): readonly number[] {
    const slashed = path === '/' ? path : `${path}/`;
    const prefixed: number[] = [];
    this.pathPrefixes.scan(slashed, (at) => prefixed.push(at));
    return this.textCandidates(this.pathLiterals, this.pathAlways, slashed, path, slashed === path ? null : slashed, prefixed);
  }

  /**
   * The rules whose literal occurs in `scanned` and whose glob (if any) matches `text` (or `alt`).
   * The literal index reports every occurrence, thousands for a long text; each rule is judged
   * once (`tried`), so a request costs one pass plus one glob test per candidate rule: linear in the
   * text, never text × occurrences.
   */
  private textCandidates(literals: SubstringIndex<number>, always: number[], scanned: string, text: string, alt: string | null, seed: number[] | null): readonly number[] {
    let found: Set<number> | null = seed && seed.length > 0 ? new Set(seed) : null;
    let tried: Set<number> | null = null;
    const consider = (at: number) => {
      if (found?.has(at)) return;
      const glob = this.globs.get(at);
      if (glob !== undefined) {
        if (tried?.has(at)) return;
        (tried ??= new Set()).add(at);
        matcherStats.globTests++;
        if (!globMatch(glob, text)) {
          if (alt === null || !endsOpen(glob)) return;
          matcherStats.globTests++;
          if (!globMatch(glob, alt)) return;
        }
      }
      (found ??= new Set()).add(at);
    };
    literals.scan(scanned, consider);
    for (const at of always) consider(at);
    return found ? [...found] : NONE;
  }
}

/** Memoises a text's candidates (bounded: cleared when full; a full cache means varied traffic anyway). */
function remember(cache: Map<string, readonly number[]>, text: string, found: readonly number[]): readonly number[] {
  if (text.length <= CACHEABLE_LENGTH) {
    if (cache.size >= CANDIDATE_CACHE_MAX) cache.clear();
    cache.set(text, found);
  }
  return found;
}

/** Whether a glob can match `text/` without matching `text`: only if it can end on that slash. */
const endsOpen = (glob: string): boolean => {
  const c = glob.charCodeAt(glob.length - 1);
  return c === 47 /* / */ || c === 42 /* * */ || c === 63 /* ? */;
};

/** The path the router routes: one trailing slash dropped (`ignoreTrailingSlash`), except the root's. */
export function routedPath(path: string): string {
  return path.length > 1 && path.charCodeAt(path.length - 1) === 47 ? path.slice(0, -1) : path;
}

function push<K>(map: Map<K, number[]>, key: K, at: number): void {
  const list = map.get(key);
  if (list) list.push(at);
  else map.set(key, [at]);
}

function mapFor<K>(maps: Map<number, Map<K, number[]>>, prefix: number): Map<K, number[]> {
  let m = maps.get(prefix);
  if (!m) {
    m = new Map();
    maps.set(prefix, m);
  }
  return m;
}

function visitAll(rules: readonly number[] | undefined, visit: Visit): void {
  if (rules) for (let i = 0; i < rules.length; i++) visit(rules[i]!);
}

/** What the dashboard shows of the rules in force. */
export interface ActiveRuleCounts {
  total: number;
  byType: Record<string, number>;
  byOrigin: Record<string, number>;
}

/**
 * The blocklist in memory, rebuilt from the tables on every change (state cache). One index
 * holds allow and block rules together, so a request is looked up once; an allow rule that
 * matches wins over every block, and among blocks `outranks` decides. A rule whose `expiresAt`
 * has passed is skipped at check time, so expiry needs no reload. Rules are held as columns
 * (`RuleColumns`); the hot path allocates nothing unless a rule matches.
 */
export class BlocklistMatcher {
  private readonly cols = new RuleColumns();
  private readonly index = new RuleSet();
  /** Rule id → position (the last rule added with that id). */
  private readonly byId = new Map<number, number>();
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
    const at = this.cols.push(rule);
    this.byId.set(rule.id, at);
    this.index.add(rule, at);
    if (rule.type === 'api_client' && rule.action === 'allow') this.clientAllow = true;
  }

  private seal(): void {
    this.cols.seal();
    this.index.seal();
    this.sealed = true;
  }

  /** The rule with this id (made on each call), or undefined. */
  rule(id: number): ActiveRule | undefined {
    const at = this.byId.get(id);
    return at === undefined ? undefined : this.cols.rule(at);
  }

  /** Counts of the rules not expired at `now`, by type and by origin. */
  counts(now: number): ActiveRuleCounts {
    const out: ActiveRuleCounts = { total: 0, byType: {}, byOrigin: {} };
    const cols = this.cols;
    for (const at of this.byId.values()) {
      if (cols.expiresAt[at]! <= now) continue;
      out.total++;
      const type = cols.typeOf(at);
      const origin = cols.originOf(at);
      out.byType[type] = (out.byType[type] ?? 0) + 1;
      out.byOrigin[origin] = (out.byOrigin[origin] ?? 0) + 1;
    }
    return out;
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
    scan.start(this.cols, now);
    this.index.visitRequest(input, keep);
    if (input.clientId !== null && this.hasClientRules) this.index.visitClient(input.clientId, keep);
    return scan.decision();
  }

  /** The deciding `api_client` rule for an authenticated client, or null. */
  decideClient(clientId: number, now: number): Decision | null {
    if (!this.hasClientRules) return null;
    scan.start(this.cols, now);
    this.index.visitClient(clientId, keep);
    return scan.decision();
  }

  /** The allow rule covering this input, if any (escalation never blocks an allowed address). */
  allows(input: MatchInput, now: number): ActiveRule | null {
    scan.start(this.cols, now);
    this.index.visitRequest(input, keep);
    const allowed = scan.allowed;
    scan.start(EMPTY_COLUMNS, 0);
    return allowed === -1 ? null : this.cols.rule(allowed);
  }

  /** Every active rule that matches, for the check endpoint's explanation. */
  matching(input: MatchInput, now: number): ActiveRule[] {
    const out = new Set<number>();
    const collect: Visit = (at) => {
      if (this.cols.expiresAt[at]! > now) out.add(at);
    };
    this.index.visitRequest(input, collect);
    if (input.clientId !== null) this.index.visitClient(input.clientId, collect);
    return [...out].map((at) => this.cols.rule(at));
  }
}

const EMPTY_COLUMNS = new RuleColumns();

/**
 * The running choice of one scan. Module state rather than closures made per request: the hot
 * path allocates nothing unless a rule matches (a scan is synchronous, so never shared).
 */
const scan = {
  cols: EMPTY_COLUMNS,
  now: 0,
  /** The oldest matching allow rule (any would do; the oldest keeps the answer stable); -1: none. */
  allowed: -1,
  blocking: -1,
  start(cols: RuleColumns, now: number): void {
    this.cols = cols;
    this.now = now;
    this.allowed = -1;
    this.blocking = -1;
  },
  decision(): Decision | null {
    const { allowed, blocking, cols } = this;
    this.allowed = this.blocking = -1;
    this.cols = EMPTY_COLUMNS;
    if (allowed !== -1) return { outcome: 'allow', rule: cols.rule(allowed) };
    if (blocking !== -1) return { outcome: cols.monitor[blocking] ? 'monitor' : 'block', rule: cols.rule(blocking) };
    return null;
  },
};
const keep: Visit = (at) => {
  const cols = scan.cols;
  if (cols.expiresAt[at]! <= scan.now) return;
  if (cols.allow[at]) {
    if (scan.allowed === -1 || cols.id[at]! < cols.id[scan.allowed]!) scan.allowed = at;
  } else if (scan.blocking === -1 || cols.outranks(at, scan.blocking)) scan.blocking = at;
};

export const EMPTY_MATCHER = new BlocklistMatcher([]);
