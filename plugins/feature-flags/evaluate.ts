import type { SemVer } from 'semver';
import { murmurhash3x86_32 } from './murmurhash3.js';
import { parseSemver } from './semver.js';
import type { ErrorCode, Operator, Prerequisite, Reason, Rule, Variant } from './schemas.js';

/**
 * The flag evaluation engine: pure functions over compiled flags, no Fastify, no database.
 * `compileFlags` turns stored flags into a `FlagSet` once per state reload (Sets for `in`,
 * parsed semver, weights as cumulative thousandths); `evaluateFlag`/`evaluateFlags` then answer
 * from memory.
 *
 * Order, for one flag and one context:
 * 1. unknown flag                      → ERROR (FLAG_NOT_FOUND), value null
 * 2. `enabled: false` (kill switch)    → DISABLED, the off value; nothing else is looked at
 * 3. a prerequisite not met            → PREREQUISITE_FAILED, the off value
 * 4. the first rule that applies       → TARGETING_MATCH (its variant, or the weighted split)
 * 5. subject inside rolloutPercentage  → SPLIT (true, or the weighted variant)
 * 6. otherwise                         → DEFAULT, the default value
 * A step that needs a bucket without a subject key → ERROR (TARGETING_KEY_MISSING), default value.
 *
 * Bucketing: `murmurhash3_x86_32(flagKey + ':' + subjectKey) % 100000`, read as thousandths of a
 * percentage point in [0, 100); the subject is in a rollout of p% iff bucket < p × 1000, so
 * raising p only adds subjects. Variants use an independent hash of
 * `flagKey + ':variant:' + subjectKey`, so who is in the rollout says nothing about which
 * variant they get.
 */

/** The flag as stored (what the service reads and the API shows). */
export interface FlagDefinition {
  key: string;
  enabled: boolean;
  rolloutPercentage: number;
  variants: Variant[];
  rules: Rule[];
  prerequisites: Prerequisite[];
  defaultValue: unknown;
  offValue: unknown;
}

export type AttributeValue = string | number | boolean | ReadonlyArray<string | number>;

export interface EvaluationContext {
  /** The subject key (user id, account id...): what buckets are computed from. */
  key?: string;
  /** OpenFeature's name for `key`; `key` wins when both are given. */
  targetingKey?: string;
  attributes?: Readonly<Record<string, AttributeValue>>;
}

export interface Evaluation {
  key: string;
  value: unknown;
  variant: string | null;
  reason: Reason;
  errorCode?: ErrorCode;
  /** Index of the rule that decided (TARGETING_MATCH). */
  ruleIndex?: number;
  /** The prerequisite flag that was not met (PREREQUISITE_FAILED). */
  prerequisite?: string;
}

/** Buckets are integers in [0, BUCKETS): thousandths of a percentage point. */
export const BUCKETS = 100_000;
/** A percentage (0-100, at most 3 decimals) as thousandths. */
export const toThousandths = (percentage: number): number => Math.round(percentage * 1000);

export function rolloutBucket(flagKey: string, subjectKey: string): number {
  return murmurhash3x86_32(`${flagKey}:${subjectKey}`) % BUCKETS;
}
export function variantBucket(flagKey: string, subjectKey: string): number {
  return murmurhash3x86_32(`${flagKey}:variant:${subjectKey}`) % BUCKETS;
}

type Scalar = string | number | boolean;
type Matcher = (value: Scalar) => boolean;

interface CompiledRule {
  attribute: string;
  /** true for not_in / not_equals: the rule matches when no element of the attribute matches. */
  negated: boolean;
  match: Matcher;
  /** undefined: the whole matching population. */
  rollout: number | undefined;
  /** The variant the rule serves; undefined: the flag's weighted split. */
  variant: CompiledVariant | undefined;
}

interface CompiledVariant {
  key: string;
  value: unknown;
  /** Cumulative upper bound in thousandths: the variant takes buckets [previous upTo, upTo). */
  upTo: number;
}

export interface CompiledFlag {
  key: string;
  /** Boolean flags (no variants) serve `true`/variant `on` and `false`/variant `off`. */
  boolean: boolean;
  enabled: boolean;
  rollout: number;
  /** Weighted variants with a non-zero share, in order; for boolean flags the one `on` variant. */
  split: CompiledVariant[];
  rules: CompiledRule[];
  prerequisites: ReadonlyArray<{ flagKey: string; variant: string | undefined }>;
  /** Another flag names this one as a prerequisite: worth remembering its result within a call. */
  isPrerequisite: boolean;
  defaultValue: unknown;
  offValue: unknown;
  /** Why the flag cannot be evaluated (stored data the engine refuses); evaluates to ERROR. */
  broken: string | undefined;
}

export interface FlagSet {
  readonly flags: ReadonlyMap<string, CompiledFlag>;
}

const ON: CompiledVariant = { key: 'on', value: true, upTo: BUCKETS };
const OFF: CompiledVariant = { key: 'off', value: false, upTo: 0 };
const BOOLEAN_VARIANTS: ReadonlyMap<string, CompiledVariant> = new Map([
  ['on', ON],
  ['off', OFF],
]);

const asString = (v: Scalar): string => (typeof v === 'string' ? v : String(v));
function asNumber(v: Scalar): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}
/**
 * Parsed attribute versions. Parsing costs more than the rest of a rule, and one context's
 * `appVersion` meets every semver rule of every flag; bounded, emptied when full.
 */
const parsedVersions = new Map<string, SemVer | null>();
const PARSED_VERSIONS_MAX = 1024;
function asSemver(v: Scalar): SemVer | undefined {
  if (typeof v !== 'string') return undefined;
  let parsed = parsedVersions.get(v);
  if (parsed === undefined) {
    parsed = parseSemver(v) ?? null;
    if (parsedVersions.size >= PARSED_VERSIONS_MAX) parsedVersions.clear();
    parsedVersions.set(v, parsed);
  }
  return parsed ?? undefined;
}

function numberValue(values: ReadonlyArray<string | number>): number {
  const n = values[0];
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error('needs one finite number');
  return n;
}

/** Builds the matcher of one operator over the rule's values (parsed once, here). */
export function compileMatcher(operator: Operator, values: ReadonlyArray<string | number>): { match: Matcher; negated: boolean } {
  const strings = values.map(String);
  switch (operator) {
    case 'in':
    case 'not_in': {
      const set = new Set(strings);
      return { match: (v) => set.has(asString(v)), negated: operator === 'not_in' };
    }
    case 'equals':
    case 'not_equals': {
      if (values.length !== 1) throw new Error('needs exactly one value');
      const expected = strings[0]!;
      return { match: (v) => asString(v) === expected, negated: operator === 'not_equals' };
    }
    case 'starts_with':
      return { match: (v) => strings.some((s) => asString(v).startsWith(s)), negated: false };
    case 'ends_with':
      return { match: (v) => strings.some((s) => asString(v).endsWith(s)), negated: false };
    case 'contains':
      return { match: (v) => strings.some((s) => asString(v).includes(s)), negated: false };
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      if (values.length !== 1) throw new Error('needs exactly one value');
      const bound = numberValue(values);
      const test = { gt: (n: number) => n > bound, gte: (n: number) => n >= bound, lt: (n: number) => n < bound, lte: (n: number) => n <= bound }[operator];
      return {
        match: (v) => {
          const n = asNumber(v);
          return n !== undefined && test(n);
        },
        negated: false,
      };
    }
    case 'semver_eq':
    case 'semver_gt':
    case 'semver_gte':
    case 'semver_lt':
    case 'semver_lte': {
      if (values.length !== 1 || typeof values[0] !== 'string') throw new Error('needs exactly one version string');
      const bound = parseSemver(values[0]);
      if (bound === undefined) throw new Error(`'${values[0]}' is not a semantic version`);
      const test = {
        semver_eq: (c: number) => c === 0,
        semver_gt: (c: number) => c > 0,
        semver_gte: (c: number) => c >= 0,
        semver_lt: (c: number) => c < 0,
        semver_lte: (c: number) => c <= 0,
      }[operator];
      return {
        match: (v) => {
          const version = asSemver(v);
          return version !== undefined && test(version.compare(bound));
        },
        negated: false,
      };
    }
  }
}

function compileFlag(def: FlagDefinition): CompiledFlag {
  const boolean = def.variants.length === 0;
  let upTo = 0;
  const variants = new Map<string, CompiledVariant>();
  const split: CompiledVariant[] = [];
  for (const v of def.variants) {
    upTo += toThousandths(v.weight);
    const compiled = { key: v.key, value: v.value, upTo };
    variants.set(v.key, compiled);
    if (toThousandths(v.weight) > 0) split.push(compiled);
  }
  if (!boolean && upTo !== BUCKETS) throw new Error('variant weights do not sum to 100');
  const variantNamed = (key: string): CompiledVariant => {
    const found = (boolean ? BOOLEAN_VARIANTS : variants).get(key);
    if (!found) throw new Error(`unknown variant '${key}'`);
    return found;
  };
  const rules = def.rules.map((rule, i): CompiledRule => {
    try {
      return {
        attribute: rule.attribute,
        ...compileMatcher(rule.operator, rule.values),
        rollout: rule.rolloutPercentage === undefined ? undefined : toThousandths(rule.rolloutPercentage),
        variant: rule.variant === undefined ? undefined : variantNamed(rule.variant),
      };
    } catch (err) {
      throw new Error(`rule ${i}: ${(err as Error).message}`);
    }
  });
  return {
    key: def.key,
    boolean,
    enabled: def.enabled,
    rollout: toThousandths(def.rolloutPercentage),
    split: boolean ? [ON] : split,
    rules,
    prerequisites: def.prerequisites.map((p) => ({ flagKey: p.flagKey, variant: p.variant })),
    isPrerequisite: false,
    defaultValue: boolean ? false : def.defaultValue,
    offValue: boolean ? false : def.offValue,
    broken: undefined,
  };
}

/**
 * Compiles every flag once. A flag the engine cannot compile (bad stored data, a prerequisite
 * cycle) is kept as `broken` and evaluates to ERROR rather than failing the whole set.
 */
export function compileFlags(defs: Iterable<FlagDefinition>): FlagSet {
  const flags = new Map<string, CompiledFlag>();
  const byKey = new Map<string, FlagDefinition>();
  for (const def of defs) byKey.set(def.key, def);
  // Key order: what `evaluateFlags` without keys answers in, whatever order the rows came in.
  const sorted = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const def of sorted) {
    try {
      flags.set(def.key, compileFlag(def));
    } catch (err) {
      flags.set(def.key, brokenFlag(def, (err as Error).message));
    }
  }
  for (const key of flagsInCycles(byKey)) {
    const def = byKey.get(key)!;
    flags.set(key, brokenFlag(def, 'prerequisite cycle'));
  }
  for (const flag of flags.values()) {
    for (const p of flag.prerequisites) {
      const pre = flags.get(p.flagKey);
      if (pre) pre.isPrerequisite = true;
    }
  }
  return { flags };
}

function brokenFlag(def: FlagDefinition, why: string): CompiledFlag {
  const boolean = def.variants.length === 0;
  return {
    key: def.key,
    boolean,
    enabled: def.enabled,
    rollout: 0,
    split: [],
    rules: [],
    prerequisites: [],
    isPrerequisite: false,
    defaultValue: boolean ? false : def.defaultValue,
    offValue: boolean ? false : def.offValue,
    broken: why,
  };
}

/** Keys of flags that are on, or lead to, a prerequisite cycle. */
export function flagsInCycles(byKey: ReadonlyMap<string, Pick<FlagDefinition, 'prerequisites'>>): Set<string> {
  const state = new Map<string, 'visiting' | 'ok' | 'cycle'>();
  const visit = (key: string): boolean => {
    const seen = state.get(key);
    if (seen === 'visiting' || seen === 'cycle') return true;
    if (seen === 'ok') return false;
    state.set(key, 'visiting');
    let cyclic = false;
    for (const p of byKey.get(key)?.prerequisites ?? []) {
      if (visit(p.flagKey)) cyclic = true;
    }
    state.set(key, cyclic ? 'cycle' : 'ok');
    return cyclic;
  };
  const out = new Set<string>();
  for (const key of byKey.keys()) if (visit(key)) out.add(key);
  return out;
}

/** The subject key of a context, if any. */
export function subjectOf(context: EvaluationContext): string | undefined {
  const key = context.key ?? context.targetingKey;
  return key === undefined || key === '' ? undefined : key;
}

/**
 * The context's own attribute only: an attribute named `constructor` or `toString` that the
 * context does not carry is missing (and never matches), not Object.prototype's function.
 */
function attributeOf(context: EvaluationContext, name: string, subject: string | undefined): AttributeValue | undefined {
  const attributes = context.attributes;
  if (attributes !== undefined && Object.hasOwn(attributes, name)) return attributes[name];
  return name === 'key' ? subject : undefined;
}

function ruleMatches(rule: CompiledRule, context: EvaluationContext, subject: string | undefined): boolean {
  const value = attributeOf(context, rule.attribute, subject);
  if (value === undefined || value === null) return false;
  if (Array.isArray(value)) {
    const any = value.some((v: string | number) => rule.match(v));
    return rule.negated ? !any : any;
  }
  const hit = rule.match(value as Scalar);
  return rule.negated ? !hit : hit;
}

/** Flag served to the subject: `off` for boolean flags' `off` variant, else the variant's value. */
const served = (flag: CompiledFlag, variant: CompiledVariant, reason: Reason, ruleIndex?: number): Evaluation =>
  ruleIndex === undefined
    ? { key: flag.key, value: variant.value, variant: variant.key, reason }
    : { key: flag.key, value: variant.value, variant: variant.key, reason, ruleIndex };

const notServed = (flag: CompiledFlag, reason: Reason, value: unknown, extra?: Partial<Evaluation>): Evaluation => ({
  key: flag.key,
  value,
  variant: flag.boolean ? 'off' : null,
  reason,
  ...extra,
});

const keyMissing = (flag: CompiledFlag): Evaluation => notServed(flag, 'ERROR', flag.defaultValue, { errorCode: 'TARGETING_KEY_MISSING' });

/** Whether a prerequisite's evaluation counts as "on" (or as the variant the prerequisite names). */
function prerequisiteMet(pre: CompiledFlag, result: Evaluation, variant: string | undefined): boolean {
  if (variant !== undefined) return result.variant === variant;
  if (pre.boolean) return result.value === true;
  return result.reason === 'TARGETING_MATCH' || result.reason === 'SPLIT';
}

/** Evaluations of one call, so a prerequisite shared by many flags is evaluated once. */
type Memo = Map<string, Evaluation>;

function evaluateCompiled(set: FlagSet, flag: CompiledFlag, context: EvaluationContext, subject: string | undefined, memo: Memo | undefined): Evaluation {
  if (!flag.enabled) return notServed(flag, 'DISABLED', flag.offValue);
  if (flag.broken !== undefined) return notServed(flag, 'ERROR', flag.defaultValue, { errorCode: 'GENERAL' });

  for (const p of flag.prerequisites) {
    const pre = set.flags.get(p.flagKey);
    const met = pre !== undefined && prerequisiteMet(pre, evaluateMemo(set, pre, context, subject, memo), p.variant);
    if (!met) return notServed(flag, 'PREREQUISITE_FAILED', flag.offValue, { prerequisite: p.flagKey });
  }

  // One rollout bucket per evaluation, computed only when a percentage strictly between 0 and
  // 100 needs it (no closures here: this runs for every flag of every evaluation).
  let bucket = -1;
  const rules = flag.rules;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    if (!ruleMatches(rule, context, subject)) continue;
    const rollout = rule.rollout;
    if (rollout !== undefined && rollout < BUCKETS) {
      if (rollout <= 0) continue;
      if (subject === undefined) return keyMissing(flag);
      if (bucket < 0) bucket = rolloutBucket(flag.key, subject);
      if (bucket >= rollout) continue;
    }
    const variant = rule.variant ?? pickVariant(flag, subject);
    if (!variant) return keyMissing(flag);
    return served(flag, variant, 'TARGETING_MATCH', i);
  }

  if (flag.rollout < BUCKETS) {
    if (flag.rollout <= 0) return notServed(flag, 'DEFAULT', flag.defaultValue);
    if (subject === undefined) return keyMissing(flag);
    if (bucket < 0) bucket = rolloutBucket(flag.key, subject);
    if (bucket >= flag.rollout) return notServed(flag, 'DEFAULT', flag.defaultValue);
  }
  const variant = pickVariant(flag, subject);
  if (!variant) return keyMissing(flag);
  return served(flag, variant, 'SPLIT');
}

/** The weighted variant of a subject; undefined when a split is needed and there is no subject key. */
function pickVariant(flag: CompiledFlag, subject: string | undefined): CompiledVariant | undefined {
  const split = flag.split;
  if (split.length === 1) return split[0];
  if (subject === undefined) return undefined;
  const b = variantBucket(flag.key, subject);
  for (const v of split) if (b < v.upTo) return v;
  return split[split.length - 1];
}

function evaluateMemo(set: FlagSet, flag: CompiledFlag, context: EvaluationContext, subject: string | undefined, memo: Memo | undefined): Evaluation {
  if (!memo || !flag.isPrerequisite) return evaluateCompiled(set, flag, context, subject, memo);
  let result = memo.get(flag.key);
  if (!result) {
    result = evaluateCompiled(set, flag, context, subject, memo);
    memo.set(flag.key, result);
  }
  return result;
}

export const flagNotFound = (key: string): Evaluation => ({ key, value: null, variant: null, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });

/** One flag for one context. */
export function evaluateFlag(set: FlagSet, key: string, context: EvaluationContext): Evaluation {
  const flag = set.flags.get(key);
  if (!flag) return flagNotFound(key);
  return evaluateCompiled(set, flag, context, subjectOf(context), flag.prerequisites.length ? new Map() : undefined);
}

/** Many flags (all when `keys` is omitted) for one context, in the order asked (or by key). */
export function evaluateFlags(set: FlagSet, context: EvaluationContext, keys?: Iterable<string>): Evaluation[] {
  const subject = subjectOf(context);
  const memo: Memo = new Map();
  const out: Evaluation[] = [];
  for (const key of keys ?? set.flags.keys()) {
    const flag = set.flags.get(key);
    out.push(flag ? evaluateMemo(set, flag, context, subject, memo) : flagNotFound(key));
  }
  return out;
}
