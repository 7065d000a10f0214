import { parseCidr, parseIp, v4Network, v6Network, type ParsedIp } from './addresses.js';
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
 * The rules of one action (block or allow) indexed for lookup: exact addresses in Maps,
 * CIDRs in one Map per prefix length (only the lengths in use are probed, longest first),
 * user-agent and path patterns behind one-pass literal indexes, clients in a Map.
 */
class RuleSet {
  readonly v4Exact = new Map<number, ActiveRule[]>();
  readonly v6Exact = new Map<string, ActiveRule[]>();
  readonly v4Cidr = new Map<number, Map<number, ActiveRule[]>>();
  readonly v6Cidr = new Map<number, Map<string, ActiveRule[]>>();
  v4Lengths: number[] = [];
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
        if (ip.v === 4) push(this.v4Exact, ip.n, rule);
        else push(this.v6Exact, v6Network(ip.g, 128), rule);
        return;
      }
      case 'cidr': {
        const c = parseCidr(rule.value);
        if ('error' in c) return;
        if (c.ip.v === 4) push(mapFor(this.v4Cidr, c.prefix), v4Network(c.ip.n, c.prefix), rule);
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
    this.v4Lengths = [...this.v4Cidr.keys()].sort((a, b) => b - a);
    this.v6Lengths = [...this.v6Cidr.keys()].sort((a, b) => b - a);
    this.uaLiterals.build();
    this.pathLiterals.build();
  }

  /** Every rule matching the request's address, user agent and path (expiry not checked). */
  visitRequest(input: MatchInput, visit: Visit): void {
    const ip = input.ip;
    if (ip) {
      if (ip.v === 4) {
        visitAll(this.v4Exact.get(ip.n), visit);
        for (const len of this.v4Lengths) visitAll(this.v4Cidr.get(len)!.get(v4Network(ip.n, len)), visit);
      } else {
        if (this.v6Exact.size > 0) visitAll(this.v6Exact.get(v6Network(ip.g, 128)), visit);
        for (const len of this.v6Lengths) visitAll(this.v6Cidr.get(len)!.get(v6Network(ip.g, len)), visit);
      }
    }
    if (this.uaLiterals.size > 0 || this.uaAlways.length > 0) visitAll(this.cached(this.uaCache, input.userAgent, (t) => this.uaCandidates(t)), visit);
    if (this.pathPrefixes.size > 0 || this.pathLiterals.size > 0 || this.pathAlways.length > 0) {
      visitAll(this.cached(this.pathCache, input.path, (t) => this.pathCandidates(t)), visit);
    }
  }

  visitClient(clientId: number, visit: Visit): void {
    visitAll(this.clients.get(clientId), visit);
  }

  private cached(cache: Map<string, readonly ActiveRule[]>, text: string, compute: (text: string) => readonly ActiveRule[]): readonly ActiveRule[] {
    const hit = cache.get(text);
    if (hit) return hit;
    const found = compute(text);
    if (text.length <= CACHEABLE_LENGTH) {
      // Cleared rather than evicted one by one: cheap, and a full cache means varied traffic anyway.
      if (cache.size >= CANDIDATE_CACHE_MAX) cache.clear();
      cache.set(text, found);
    }
    return found;
  }

  private uaCandidates(userAgent: string): readonly ActiveRule[] {
    const text = userAgent.toLowerCase();
    return textCandidates(this.uaLiterals, this.uaAlways, text, null);
  }

  private pathCandidates(path: string): readonly ActiveRule[] {
    const prefixed: ActiveRule[] = [];
    this.pathPrefixes.scan(path, (r) => prefixed.push(r));
    return textCandidates(this.pathLiterals, this.pathAlways, path, prefixed);
  }
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

function textCandidates(literals: SubstringIndex<TextEntry>, always: TextEntry[], text: string, seed: ActiveRule[] | null): readonly ActiveRule[] {
  let found: Set<ActiveRule> | null = seed && seed.length > 0 ? new Set(seed) : null;
  const consider = (e: TextEntry) => {
    if (found?.has(e.rule)) return;
    if (e.glob === null || globMatch(e.glob, text)) (found ??= new Set()).add(e.rule);
  };
  literals.scan(text, consider);
  for (const e of always) consider(e);
  return found ? [...found] : NONE;
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
 * The blocklist in memory, rebuilt from the tables on every change (state cache). Allow rules
 * are looked up first and win over every block; among blocks `outranks` decides. A rule whose
 * `expiresAt` has passed is skipped at check time, so expiry needs no reload.
 */
export class BlocklistMatcher {
  private readonly allow = new RuleSet();
  private readonly block = new RuleSet();
  /** Active rules by id (the check endpoint and dashboards describe them). */
  readonly rules: ReadonlyMap<number, ActiveRule>;
  readonly hasClientRules: boolean;
  readonly hasClientAllowRules: boolean;

  constructor(rules: Iterable<ActiveRule>) {
    const byId = new Map<number, ActiveRule>();
    for (const rule of rules) {
      byId.set(rule.id, rule);
      (rule.action === 'allow' ? this.allow : this.block).add(rule);
    }
    this.allow.seal();
    this.block.seal();
    this.rules = byId;
    this.hasClientRules = this.allow.clients.size + this.block.clients.size > 0;
    this.hasClientAllowRules = this.allow.clients.size > 0;
  }

  get size(): number {
    return this.allow.size + this.block.size;
  }

  /** The deciding rule for a request before authentication (address, user agent, path), or null. */
  decide(input: MatchInput, now: number): Decision | null {
    return this.decideWith(input, now, (set, visit) => {
      set.visitRequest(input, visit);
      if (input.clientId !== null) set.visitClient(input.clientId, visit);
    });
  }

  /** The deciding `api_client` rule for an authenticated client, or null. */
  decideClient(clientId: number, now: number): Decision | null {
    if (!this.hasClientRules) return null;
    return this.decideWith(null, now, (set, visit) => set.visitClient(clientId, visit));
  }

  /** Whether an allow rule covers this input (escalation never blocks an allowed address). */
  allows(input: MatchInput, now: number): ActiveRule | null {
    let found: ActiveRule | null = null;
    this.allow.visitRequest(input, (r) => {
      if (found === null && r.expiresAt > now) found = r;
    });
    return found;
  }

  /** Every active rule that matches, for the check endpoint's explanation. */
  matching(input: MatchInput, now: number): ActiveRule[] {
    const out = new Set<ActiveRule>();
    const keep: Visit = (r) => {
      if (r.expiresAt > now) out.add(r);
    };
    for (const set of [this.allow, this.block]) {
      set.visitRequest(input, keep);
      if (input.clientId !== null) set.visitClient(input.clientId, keep);
    }
    return [...out];
  }

  private decideWith(_input: MatchInput | null, now: number, visitSets: (set: RuleSet, visit: Visit) => void): Decision | null {
    if (this.allow.size > 0) {
      let allowed: ActiveRule | null = null;
      visitSets(this.allow, (r) => {
        if (r.expiresAt > now && (allowed === null || r.id < allowed.id)) allowed = r;
      });
      if (allowed) return { outcome: 'allow', rule: allowed };
    }
    if (this.block.size === 0) return null;
    let best: ActiveRule | null = null;
    visitSets(this.block, (r) => {
      if (r.expiresAt > now && (best === null || outranks(r, best))) best = r;
    });
    if (best === null) return null;
    const rule: ActiveRule = best;
    return { outcome: rule.mode === 'enforce' ? 'block' : 'monitor', rule };
  }
}

export const EMPTY_MATCHER = new BlocklistMatcher([]);
