import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUCKETS, compileFlags, evaluateFlag, evaluateFlags, rolloutBucket, variantBucket, type EvaluationContext, type FlagDefinition } from './evaluate.js';
import { murmurhash3x86_32 } from './murmurhash3.js';
import type { Rule } from './schemas.js';

const flag = (key: string, over: Partial<FlagDefinition> = {}): FlagDefinition => ({
  key,
  enabled: true,
  rolloutPercentage: 100,
  variants: [],
  rules: [],
  prerequisites: [],
  defaultValue: false,
  offValue: false,
  ...over,
});
const set = (...defs: FlagDefinition[]) => compileFlags(defs);
const one = (def: FlagDefinition, context: EvaluationContext) => evaluateFlag(set(def), def.key, context);
const subjects = (n: number, prefix = 'user-') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('murmurhash3 x86 32-bit', () => {
  // Vectors of the reference implementation (SMHasher's MurmurHash3_x86_32).
  const bytes = (...b: number[]) => new Uint8Array(b);
  it.each([
    ['', 0, 0],
    ['', 1, 0x514e28b7],
    ['', 0xffffffff, 0x81f16f39],
    [bytes(0, 0, 0, 0), 0, 0x2362f9de],
    [bytes(0xff, 0xff, 0xff, 0xff), 0, 0x76293b50],
    [bytes(0x21, 0x43, 0x65, 0x87), 0, 0xf55b516b],
    [bytes(0x21, 0x43, 0x65), 0, 0x7e4a8634],
    [bytes(0x21, 0x43), 0, 0xa0f7b07a],
    [bytes(0x21), 0, 0x72661cf4],
    ['aaaa', 0x9747b28c, 0x5a97808a],
    ['aaa', 0x9747b28c, 0x283e0130],
    ['aa', 0x9747b28c, 0x5d211726],
    ['a', 0x9747b28c, 0x7fa09ea6],
    ['abcd', 0x9747b28c, 0xf0478627],
    ['abc', 0x9747b28c, 0xc84a62dd],
    ['ab', 0x9747b28c, 0x74875592],
    ['Hello, world!', 0x9747b28c, 0x24884cba],
    ['ππππππππ', 0x9747b28c, 0xd58063c1],
    ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
    ['The quick brown fox jumps over the lazy dog', 0, 0x2e4ff723],
  ] as const)('hash(%j, seed %i) = %i', (input, seed, expected) => {
    expect(murmurhash3x86_32(input, seed)).toBe(expected);
  });

  it('hashes a long string (past the reused buffer) like its bytes', () => {
    const long = 'x'.repeat(5000) + 'é';
    expect(murmurhash3x86_32(long)).toBe(murmurhash3x86_32(new TextEncoder().encode(long)));
  });

  it('pins the bucket of a known subject, so a change of hashing cannot pass unnoticed', () => {
    expect(rolloutBucket('new-checkout', 'user-42')).toBe(murmurhash3x86_32('new-checkout:user-42') % BUCKETS);
    expect(variantBucket('new-checkout', 'user-42')).toBe(murmurhash3x86_32('new-checkout:variant:user-42') % BUCKETS);
  });
});

describe('operators', () => {
  const matches = (rule: Omit<Rule, 'variant' | 'rolloutPercentage'>, attributes: EvaluationContext['attributes'], key = 'u1') =>
    one(flag('op', { rolloutPercentage: 0, rules: [rule] }), { key, attributes }).reason === 'TARGETING_MATCH';

  it('in / not_in (strings and numbers compared as text; a list attribute matches on any element)', () => {
    const rule: Rule = { attribute: 'country', operator: 'in', values: ['NZ', 'AU'] };
    expect(matches(rule, { country: 'NZ' })).toBe(true);
    expect(matches(rule, { country: 'FR' })).toBe(false);
    expect(matches(rule, {})).toBe(false);
    expect(matches({ attribute: 'tier', operator: 'in', values: [1, 2] }, { tier: 2 })).toBe(true);
    expect(matches({ attribute: 'tier', operator: 'in', values: [1, 2] }, { tier: '2' })).toBe(true);
    expect(matches({ attribute: 'groups', operator: 'in', values: ['beta'] }, { groups: ['staff', 'beta'] })).toBe(true);
    const notIn: Rule = { attribute: 'country', operator: 'not_in', values: ['NZ', 'AU'] };
    expect(matches(notIn, { country: 'FR' })).toBe(true);
    expect(matches(notIn, { country: 'NZ' })).toBe(false);
    expect(matches(notIn, {})).toBe(false); // a missing attribute never matches
    expect(matches({ attribute: 'groups', operator: 'not_in', values: ['beta'] }, { groups: ['staff', 'beta'] })).toBe(false);
  });

  it('equals / not_equals (booleans as "true"/"false")', () => {
    expect(matches({ attribute: 'plan', operator: 'equals', values: ['pro'] }, { plan: 'pro' })).toBe(true);
    expect(matches({ attribute: 'plan', operator: 'equals', values: ['pro'] }, { plan: 'Pro' })).toBe(false);
    expect(matches({ attribute: 'beta', operator: 'equals', values: ['true'] }, { beta: true })).toBe(true);
    expect(matches({ attribute: 'plan', operator: 'not_equals', values: ['pro'] }, { plan: 'free' })).toBe(true);
    expect(matches({ attribute: 'plan', operator: 'not_equals', values: ['pro'] }, { plan: 'pro' })).toBe(false);
    expect(matches({ attribute: 'plan', operator: 'not_equals', values: ['pro'] }, {})).toBe(false);
  });

  it('starts_with / ends_with / contains (any of the values, case-sensitive)', () => {
    expect(matches({ attribute: 'email', operator: 'starts_with', values: ['admin@', 'ops@'] }, { email: 'ops@example.com' })).toBe(true);
    expect(matches({ attribute: 'email', operator: 'starts_with', values: ['admin@'] }, { email: 'x-admin@example.com' })).toBe(false);
    expect(matches({ attribute: 'email', operator: 'ends_with', values: ['@example.com'] }, { email: 'a@example.com' })).toBe(true);
    expect(matches({ attribute: 'email', operator: 'ends_with', values: ['@example.com'] }, { email: 'a@example.org' })).toBe(false);
    expect(matches({ attribute: 'ua', operator: 'contains', values: ['Firefox'] }, { ua: 'Mozilla/5.0 Firefox/128' })).toBe(true);
    expect(matches({ attribute: 'ua', operator: 'contains', values: ['firefox'] }, { ua: 'Mozilla/5.0 Firefox/128' })).toBe(false);
  });

  it('gt / gte / lt / lte compare numbers (numeric strings too; anything else never matches)', () => {
    const at = (operator: 'gt' | 'gte' | 'lt' | 'lte', age: number | string) => matches({ attribute: 'age', operator, values: [18] }, { age });
    expect([at('gt', 19), at('gt', 18), at('gte', 18), at('gte', 17.9)]).toEqual([true, false, true, false]);
    expect([at('lt', 17), at('lt', 18), at('lte', 18), at('lte', 18.1)]).toEqual([true, false, true, false]);
    expect(at('gt', '21')).toBe(true);
    expect(at('gt', 'old')).toBe(false);
    expect(at('lt', '')).toBe(false);
  });

  it('semver_eq / semver_gt / semver_gte / semver_lt / semver_lte (pre-releases sort before releases; invalid versions never match)', () => {
    const at = (operator: 'semver_eq' | 'semver_gt' | 'semver_gte' | 'semver_lt' | 'semver_lte', version: string) =>
      matches({ attribute: 'appVersion', operator, values: ['2.4.0'] }, { appVersion: version });
    expect(at('semver_eq', '2.4.0')).toBe(true);
    expect(at('semver_eq', '2.4.0+build.7')).toBe(true);
    expect(at('semver_eq', '2.4.1')).toBe(false);
    expect(at('semver_gt', '2.10.0')).toBe(true); // not a string comparison
    expect(at('semver_gt', '2.4.0')).toBe(false);
    expect(at('semver_gte', '2.4.0')).toBe(true);
    expect(at('semver_lt', '2.4.0-rc.1')).toBe(true);
    expect(at('semver_lt', '2.4.0')).toBe(false);
    expect(at('semver_lte', '2.4.0')).toBe(true);
    expect(at('semver_lte', '2.4.1')).toBe(false);
    expect(at('semver_gt', 'not-a-version')).toBe(false);
    // SemVer 2.0.0 exactly: no `v`, no `=`, no surrounding whitespace, no leading zeros.
    for (const loose of ['v2.4.0', 'V2.4.0', '=2.4.0', ' 2.4.0', '2.4.0 ', '2.4.0\n', '02.4.0', '2.04.0', '2.4']) {
      expect(at('semver_eq', loose), JSON.stringify(loose)).toBe(false);
      expect(at('semver_gte', loose), JSON.stringify(loose)).toBe(false);
    }
    expect(matches({ attribute: 'appVersion', operator: 'semver_gt', values: ['2.4.0'] }, { appVersion: 3 })).toBe(false);
  });

  it('a stored rule whose version is not SemVer 2.0.0 makes the flag ERROR rather than compare loosely', () => {
    const result = one(flag('loose', { rules: [{ attribute: 'appVersion', operator: 'semver_eq', values: ['v2.4.0'] }] }), { key: 'u1', attributes: { appVersion: '2.4.0' } });
    expect(result).toMatchObject({ reason: 'ERROR', errorCode: 'GENERAL' });
  });

  it('attribute `key` is the subject key unless the context has its own `key` attribute', () => {
    expect(matches({ attribute: 'key', operator: 'in', values: ['u1', 'u2'] }, {}, 'u2')).toBe(true);
    expect(matches({ attribute: 'key', operator: 'in', values: ['u1'] }, { key: 'u9' }, 'u1')).toBe(false);
  });

  // Issue 10, item 2: Object.prototype's names are not attributes a context carries.
  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'])(
    'an inherited name (%s) is a missing attribute: no operator matches it, not even not_in',
    (attribute) => {
      for (const operator of ['not_in', 'not_equals'] as const) {
        expect(matches({ attribute, operator, values: ['enterprise'] }, {})).toBe(false);
        expect(matches({ attribute, operator, values: ['enterprise'] }, { country: 'NZ' })).toBe(false);
      }
      expect(matches({ attribute, operator: 'contains', values: ['function'] }, {})).toBe(false);
      expect(matches({ attribute, operator: 'starts_with', values: ['['] }, {})).toBe(false);
    },
  );

  it('an attribute named like an Object.prototype member still matches when the context carries it', () => {
    const attributes = Object.fromEntries([
      ['constructor', 'acme'],
      ['__proto__', 'p'],
    ]);
    expect(matches({ attribute: 'constructor', operator: 'in', values: ['acme'] }, attributes)).toBe(true);
    expect(matches({ attribute: '__proto__', operator: 'equals', values: ['p'] }, attributes)).toBe(true);
    expect(matches({ attribute: 'constructor', operator: 'not_in', values: ['enterprise'] }, attributes)).toBe(true);
  });
});

describe('reasons', () => {
  it('ERROR FLAG_NOT_FOUND for an unknown key', () => {
    expect(evaluateFlag(set(), 'nope', { key: 'u' })).toEqual({ key: 'nope', value: null, variant: null, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
  });

  it('DISABLED: the kill switch wins over rules, prerequisites and rollout', () => {
    const def = flag('killed', {
      enabled: false,
      rules: [{ attribute: 'country', operator: 'in', values: ['NZ'] }],
      prerequisites: [{ flagKey: 'missing' }],
      variants: [{ key: 'a', weight: 100, value: 'A' }],
      offValue: 'off-value',
      defaultValue: 'default-value',
    });
    expect(one(def, { key: 'u', attributes: { country: 'NZ' } })).toEqual({ key: 'killed', value: 'off-value', variant: null, reason: 'DISABLED' });
    expect(one(flag('killed-bool', { enabled: false }), {})).toEqual({ key: 'killed-bool', value: false, variant: 'off', reason: 'DISABLED' });
  });

  it('TARGETING_MATCH: the first rule that applies decides, with its index', () => {
    const def = flag('targeted', {
      rolloutPercentage: 0,
      variants: [
        { key: 'blue', weight: 50, value: '#00f' },
        { key: 'red', weight: 50, value: '#f00' },
      ],
      defaultValue: '#000',
      rules: [
        { attribute: 'country', operator: 'in', values: ['NZ'], variant: 'red' },
        { attribute: 'plan', operator: 'equals', values: ['pro'], variant: 'blue' },
      ],
    });
    expect(one(def, { key: 'u', attributes: { country: 'NZ', plan: 'pro' } })).toEqual({ key: 'targeted', value: '#f00', variant: 'red', reason: 'TARGETING_MATCH', ruleIndex: 0 });
    expect(one(def, { key: 'u', attributes: { plan: 'pro' } })).toMatchObject({ variant: 'blue', ruleIndex: 1 });
    expect(one(def, { key: 'u', attributes: { plan: 'free' } })).toEqual({ key: 'targeted', value: '#000', variant: null, reason: 'DEFAULT' });
  });

  it('a rule serving `off` excludes subjects from a boolean flag', () => {
    const def = flag('exclude', { rules: [{ attribute: 'country', operator: 'in', values: ['CN'], variant: 'off' }] });
    expect(one(def, { key: 'u', attributes: { country: 'CN' } })).toMatchObject({ value: false, variant: 'off', reason: 'TARGETING_MATCH' });
    expect(one(def, { key: 'u', attributes: { country: 'NZ' } })).toMatchObject({ value: true, variant: 'on', reason: 'SPLIT' });
  });

  it('a rule with rolloutPercentage applies to that share of its subjects; the others go on to the next rule', () => {
    const def = flag('rule-rollout', { rolloutPercentage: 0, rules: [{ attribute: 'country', operator: 'in', values: ['NZ'], rolloutPercentage: 30 }] });
    const set1 = set(def);
    let matched = 0;
    for (const key of subjects(10_000)) {
      const r = evaluateFlag(set1, def.key, { key, attributes: { country: 'NZ' } });
      const inside = rolloutBucket(def.key, key) < 30_000;
      expect(r.reason).toBe(inside ? 'TARGETING_MATCH' : 'DEFAULT');
      if (inside) matched++;
    }
    expect(matched / 100).toBeGreaterThan(28);
    expect(matched / 100).toBeLessThan(32);
  });

  it('SPLIT inside the rollout, DEFAULT outside, decided by bucket < percentage', () => {
    const def = flag('half', { rolloutPercentage: 50 });
    for (const key of subjects(200)) {
      const r = one(def, { key });
      const inside = rolloutBucket('half', key) < 50_000;
      expect(r).toEqual(inside ? { key: 'half', value: true, variant: 'on', reason: 'SPLIT' } : { key: 'half', value: false, variant: 'off', reason: 'DEFAULT' });
    }
  });

  it('ERROR TARGETING_KEY_MISSING (with the default value) only when a bucket is needed', () => {
    expect(one(flag('p50', { rolloutPercentage: 50 }), {})).toEqual({ key: 'p50', value: false, variant: 'off', reason: 'ERROR', errorCode: 'TARGETING_KEY_MISSING' });
    expect(one(flag('p100', { rolloutPercentage: 100 }), {})).toMatchObject({ reason: 'SPLIT', value: true });
    expect(one(flag('p0', { rolloutPercentage: 0 }), {})).toMatchObject({ reason: 'DEFAULT', value: false });
    const ab = flag('ab', {
      variants: [
        { key: 'a', weight: 50, value: 1 },
        { key: 'b', weight: 50, value: 2 },
      ],
      defaultValue: 0,
    });
    expect(one(ab, { key: '' })).toEqual({ key: 'ab', value: 0, variant: null, reason: 'ERROR', errorCode: 'TARGETING_KEY_MISSING' });
    expect(one(ab, { targetingKey: 'u1' }).reason).toBe('SPLIT');
    const rule = flag('rule-pct', { rules: [{ attribute: 'plan', operator: 'in', values: ['pro'], rolloutPercentage: 10 }] });
    expect(one(rule, { attributes: { plan: 'pro' } })).toMatchObject({ reason: 'ERROR', errorCode: 'TARGETING_KEY_MISSING' });
  });

  it('`key` wins over `targetingKey`', () => {
    const def = flag('which-key', { rolloutPercentage: 50 });
    const k = subjects(100).find((s) => rolloutBucket('which-key', s) < 50_000)!;
    const out = subjects(100).find((s) => rolloutBucket('which-key', s) >= 50_000)!;
    expect(one(def, { key: k, targetingKey: out }).reason).toBe('SPLIT');
    expect(one(def, { key: out, targetingKey: k }).reason).toBe('DEFAULT');
  });
});

describe('prerequisites', () => {
  const base = flag('base', { rules: [{ attribute: 'plan', operator: 'equals', values: ['pro'] }], rolloutPercentage: 0 });
  const colour = flag('colour', {
    variants: [
      { key: 'red', weight: 100, value: 'r' },
      { key: 'blue', weight: 0, value: 'b' },
    ],
    rules: [{ attribute: 'plan', operator: 'equals', values: ['pro'], variant: 'blue' }],
    defaultValue: 'none',
  });

  it('the flag is served only when its prerequisite is on, else PREREQUISITE_FAILED with the off value', () => {
    const child = flag('child', { prerequisites: [{ flagKey: 'base' }] });
    const s = set(base, child);
    expect(evaluateFlag(s, 'child', { key: 'u', attributes: { plan: 'pro' } })).toMatchObject({ reason: 'SPLIT', value: true });
    expect(evaluateFlag(s, 'child', { key: 'u', attributes: { plan: 'free' } })).toEqual({ key: 'child', value: false, variant: 'off', reason: 'PREREQUISITE_FAILED', prerequisite: 'base' });
  });

  it('a prerequisite can require a variant, and chains are followed', () => {
    const needsBlue = flag('needs-blue', { prerequisites: [{ flagKey: 'colour', variant: 'blue' }] });
    const grandchild = flag('grandchild', { prerequisites: [{ flagKey: 'needs-blue' }] });
    const s = set(colour, needsBlue, grandchild);
    expect(evaluateFlag(s, 'grandchild', { key: 'u', attributes: { plan: 'pro' } }).reason).toBe('SPLIT');
    expect(evaluateFlag(s, 'grandchild', { key: 'u', attributes: { plan: 'free' } })).toMatchObject({ reason: 'PREREQUISITE_FAILED', prerequisite: 'needs-blue' });
    expect(evaluateFlag(s, 'needs-blue', { key: 'u', attributes: { plan: 'free' } })).toMatchObject({ reason: 'PREREQUISITE_FAILED', prerequisite: 'colour' });
  });

  it('a disabled or missing prerequisite is not met', () => {
    const s = set(flag('off-parent', { enabled: false }), flag('c1', { prerequisites: [{ flagKey: 'off-parent' }] }), flag('c2', { prerequisites: [{ flagKey: 'gone' }] }));
    expect(evaluateFlag(s, 'c1', { key: 'u' }).reason).toBe('PREREQUISITE_FAILED');
    expect(evaluateFlag(s, 'c2', { key: 'u' })).toMatchObject({ reason: 'PREREQUISITE_FAILED', prerequisite: 'gone' });
  });

  it('flags on or behind a cycle answer ERROR instead of looping', () => {
    const s = set(flag('a', { prerequisites: [{ flagKey: 'b' }] }), flag('b', { prerequisites: [{ flagKey: 'a' }] }), flag('c', { prerequisites: [{ flagKey: 'a' }] }), flag('d'));
    for (const key of ['a', 'b', 'c']) expect(evaluateFlag(s, key, { key: 'u' })).toMatchObject({ reason: 'ERROR', errorCode: 'GENERAL' });
    expect(evaluateFlag(s, 'd', { key: 'u' }).reason).toBe('SPLIT');
  });

  it('evaluateFlags gives the same answers as evaluateFlag, unknown keys included', () => {
    const s = set(base, colour, flag('child', { prerequisites: [{ flagKey: 'base' }] }));
    const ctx = { key: 'u7', attributes: { plan: 'pro' } };
    const keys = ['child', 'colour', 'nope', 'base'];
    expect(evaluateFlags(s, ctx, keys)).toEqual(keys.map((k) => evaluateFlag(s, k, ctx)));
    expect(evaluateFlags(s, ctx).map((r) => r.key)).toEqual(['base', 'child', 'colour']);
  });
});

describe('bucketing properties', () => {
  const abc = flag('abc-test', {
    rolloutPercentage: 40,
    variants: [
      { key: 'a', weight: 20, value: 'A' },
      { key: 'b', weight: 30, value: 'B' },
      { key: 'c', weight: 50, value: 'C' },
    ],
    rules: [{ attribute: 'country', operator: 'in', values: ['NZ'], rolloutPercentage: 70 }],
    defaultValue: 'none',
  });
  const context = fc.record({
    key: fc.string({ minLength: 1, maxLength: 40 }),
    attributes: fc.record({ country: fc.constantFrom('NZ', 'AU', 'FR') }),
  });

  it('is deterministic: two separately compiled engines agree for any subject', () => {
    const first = set(abc, flag('plain', { rolloutPercentage: 12.345 }));
    const second = set(structuredClone(abc), flag('plain', { rolloutPercentage: 12.345 }));
    fc.assert(
      fc.property(context, (ctx) => {
        expect(evaluateFlags(second, ctx)).toEqual(evaluateFlags(first, ctx));
        expect(evaluateFlag(first, 'abc-test', ctx)).toEqual(evaluateFlag(first, 'abc-test', ctx));
      }),
      { numRuns: 500 },
    );
  });

  it('is monotonic: raising the percentage never removes a subject', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,40}$/),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.array(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 200 }),
        (key, x, y, subjectKeys) => {
          const [low, high] = x <= y ? [x / 1000, y / 1000] : [y / 1000, x / 1000];
          const atLow = set(flag(key, { rolloutPercentage: low }));
          const atHigh = set(flag(key, { rolloutPercentage: high }));
          for (const s of subjectKeys) {
            if (evaluateFlag(atLow, key, { key: s }).value === true) expect(evaluateFlag(atHigh, key, { key: s }).value).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  const ONE_HUNDRED_THOUSAND = subjects(100_000, 'subject-');

  it.each([10, 33.3, 50, 75, 0.5, 99.9])('serves %d%% of 100,000 subjects, within ±1 point', (percentage) => {
    for (const key of ['new-checkout', 'search.v2', 'x']) {
      const s = set(flag(key, { rolloutPercentage: percentage }));
      let served = 0;
      for (const subject of ONE_HUNDRED_THOUSAND) if (evaluateFlag(s, key, { key: subject }).value === true) served++;
      expect(Math.abs((served / ONE_HUNDRED_THOUSAND.length) * 100 - percentage), key).toBeLessThanOrEqual(1);
    }
  });

  it('serves a random percentage of 100,000 random-looking subjects within ±1 point (random flag keys)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,40}$/), fc.integer({ min: 0, max: 100_000 }), fc.string({ maxLength: 8 }), (key, thousandths, salt) => {
        const percentage = thousandths / 1000;
        let served = 0;
        for (let i = 0; i < 100_000; i++) if (rolloutBucket(key, `${salt}${i}`) < thousandths) served++;
        expect(Math.abs(served / 1000 - percentage)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 10 },
    );
  });

  it('splits variants by weight within ±1 point over 100,000 subjects, independently of the rollout', () => {
    const weights = { a: 20, b: 30, c: 50 };
    const s = set(abc);
    const all = { a: 0, b: 0, c: 0 };
    let inRollout = 0;
    for (const subject of ONE_HUNDRED_THOUSAND) {
      const r = evaluateFlag(s, 'abc-test', { key: subject });
      if (r.reason !== 'SPLIT') continue;
      inRollout++;
      all[r.variant as keyof typeof all]++;
    }
    expect(Math.abs(inRollout / 1000 - 40)).toBeLessThanOrEqual(1);
    // Among the 40% in the rollout, the weights still hold: variant buckets do not correlate with rollout buckets.
    for (const [variant, weight] of Object.entries(weights)) {
      expect(Math.abs((all[variant as keyof typeof all] / inRollout) * 100 - weight), variant).toBeLessThanOrEqual(1);
    }

    const thirds = set(
      flag('thirds', {
        variants: [
          { key: 'x', weight: 33.333, value: 1 },
          { key: 'y', weight: 33.333, value: 2 },
          { key: 'z', weight: 33.334, value: 3 },
        ],
        defaultValue: 0,
      }),
    );
    const counts = new Map<string, number>();
    for (const subject of ONE_HUNDRED_THOUSAND) {
      const v = evaluateFlag(thirds, 'thirds', { key: subject }).variant!;
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    for (const v of ['x', 'y', 'z']) expect(Math.abs((counts.get(v) ?? 0) / 1000 - 33.333), v).toBeLessThanOrEqual(1);
  });

  it('splits random weights within ±1 point over 100,000 subjects', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 2, maxLength: 6 }), fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), (raw, key) => {
        const sum = raw.reduce((a, b) => a + b, 0) || 1;
        const thousandths = raw.map((w) => Math.floor((w / sum) * 100_000));
        thousandths[0]! += 100_000 - thousandths.reduce((a, b) => a + b, 0);
        const variants = thousandths.map((t, i) => ({ key: `v${i}`, weight: t / 1000, value: i }));
        const s = set(flag(key, { variants, defaultValue: null }));
        const counts = new Array<number>(variants.length).fill(0);
        for (let i = 0; i < 100_000; i++) {
          const r = evaluateFlag(s, key, { key: `s${i}` });
          counts[Number(r.value)]!++;
        }
        variants.forEach((v, i) => expect(Math.abs(counts[i]! / 1000 - v.weight), v.key).toBeLessThanOrEqual(1));
      }),
      { numRuns: 5 },
    );
  });
});
