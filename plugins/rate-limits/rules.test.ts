import { describe, expect, it } from 'vitest';
import { buildRuleIndex, canonicalIp, matchError, parseRoutePattern, resolveLimit, type CallerFacts, type RuleLike } from './rules.js';

let nextId = 1;
const rule = (scope: RuleLike['scope'], match = '*', route: string | null = null, max = 10): RuleLike => ({ id: nextId++, scope, match, route, max, windowSeconds: 60 });

const anonymous = (ip = '10.0.0.1'): CallerFacts => ({ ip, ipSubject: ip, keyId: null, clientId: null, clientLimit: null });
const authed = (over: Partial<CallerFacts> = {}): CallerFacts => ({ ...anonymous(), keyId: 'AAAAAAAAAAAA', clientId: 7, clientLimit: null, ...over });
const get = (path: string) => ({ method: 'GET', path });
const DEFAULT = { max: 1000, windowSeconds: 60 };

describe('rate-limit precedence (most specific rule wins)', () => {
  const keyExact = rule('api_key', 'AAAAAAAAAAAA');
  const keyAny = rule('api_key');
  const clientExact = rule('client', '7');
  const clientAny = rule('client');
  const route = rule('route', '*', 'GET /system/flags*');
  const ipExact = rule('ip', '10.0.0.1');
  const ipAny = rule('ip');
  const global = rule('global');
  const all = [keyExact, keyAny, clientExact, clientAny, route, ipExact, ipAny, global];

  // Each row removes the winner of the row before: the order the README documents.
  const ladder: Array<[string, RuleLike | 'client-own' | 'default']> = [
    ['api_key exact', keyExact],
    ["the client's own limit", 'client-own'],
    ['client exact', clientExact],
    ['route', route],
    ['ip exact', ipExact],
    ['api_key *', keyAny],
    ['client *', clientAny],
    ['ip *', ipAny],
    ['global', global],
    ['env default', 'default'],
  ];

  it('walks api_key > own client limit > client > route > ip > api_key * > client * > ip * > global > default', () => {
    let rules = [...all];
    let clientLimit: CallerFacts['clientLimit'] = { max: 3, windowSeconds: 10 };
    for (const [name, winner] of ladder) {
      const got = resolveLimit(buildRuleIndex(rules), authed({ clientLimit }), get('/system/flags/x'), DEFAULT);
      if (winner === 'client-own') {
        expect(got, name).toMatchObject({ policy: 'client-7', scope: 'client', max: 3, windowSeconds: 10, subject: 'client:7' });
        clientLimit = null;
      } else if (winner === 'default') {
        expect(got, name).toMatchObject({ policy: 'default', scope: 'default', max: 1000, subject: 'client:7' });
      } else {
        expect(got?.ruleId, name).toBe(winner.id);
        rules = rules.filter((r) => r !== winner);
      }
    }
  });

  it('counts each scope by its own subject, keyed by rule, window and subject', () => {
    const index = buildRuleIndex(all);
    expect(resolveLimit(index, authed(), get('/x'), DEFAULT)).toMatchObject({ subject: 'api_key:AAAAAAAAAAAA', counterKey: `rule-${keyExact.id}:60:api_key:AAAAAAAAAAAA` });
    expect(resolveLimit(index, anonymous(), get('/system/flags'), DEFAULT)).toMatchObject({ ruleId: route.id, subject: 'ip:10.0.0.1' });
    expect(resolveLimit(index, authed({ keyId: 'BBBBBBBBBBBB', clientId: 8 }), get('/system/flags'), DEFAULT)).toMatchObject({ ruleId: route.id, subject: 'client:8' });
    expect(resolveLimit(index, anonymous('10.0.0.2'), get('/x'), DEFAULT)).toMatchObject({ ruleId: ipAny.id, subject: 'ip:10.0.0.2' });
    expect(resolveLimit(buildRuleIndex([global]), anonymous('10.0.0.3'), get('/x'), DEFAULT)).toMatchObject({ ruleId: global.id, subject: 'ip:10.0.0.3' });
  });

  it('applies nothing when no rule matches and the default is off', () => {
    expect(resolveLimit(buildRuleIndex([]), anonymous(), get('/x'), null)).toBeNull();
    expect(resolveLimit(buildRuleIndex([rule('ip', '10.9.9.9')]), anonymous(), get('/x'), null)).toBeNull();
  });

  it('prefers exact route patterns, then longer prefixes, then a named method', () => {
    const prefix = rule('route', '*', '/a*');
    const longer = rule('route', '*', '/a/b*');
    const withMethod = rule('route', '*', 'POST /a/b*');
    const exact = rule('route', '*', '/a/b/c');
    const index = buildRuleIndex([prefix, longer, withMethod, exact]);
    const at = (method: string, path: string) => resolveLimit(index, anonymous(), { method, path }, null)?.ruleId;
    expect(at('GET', '/a/b/c')).toBe(exact.id);
    expect(at('GET', '/a/b/c/')).toBe(exact.id);
    expect(at('POST', '/a/b/d')).toBe(withMethod.id);
    expect(at('GET', '/a/b/d')).toBe(longer.id);
    expect(at('GET', '/a')).toBe(prefix.id);
    expect(at('GET', '/b')).toBeUndefined();
  });

  // Issue 10, item 6: HEAD is answered by the GET handler, so it must not slip past a GET rule.
  it('lets a GET rule cover HEAD, and a HEAD rule only HEAD (more specific than GET)', () => {
    const getRule = rule('route', '*', 'GET /system/health');
    const index = buildRuleIndex([getRule]);
    const at = (i: typeof index, method: string, path: string) => resolveLimit(i, anonymous(), { method, path }, null)?.ruleId;
    expect(at(index, 'GET', '/system/health')).toBe(getRule.id);
    expect(at(index, 'HEAD', '/system/health')).toBe(getRule.id);
    expect(at(index, 'POST', '/system/health')).toBeUndefined();
    // GET and HEAD share the GET rule's counter
    expect(resolveLimit(index, anonymous(), { method: 'HEAD', path: '/system/health' }, null)?.counterKey).toBe(
      resolveLimit(index, anonymous(), { method: 'GET', path: '/system/health' }, null)?.counterKey,
    );

    const headRule = rule('route', '*', 'HEAD /system/health');
    const both = buildRuleIndex([getRule, headRule]);
    expect(at(both, 'HEAD', '/system/health')).toBe(headRule.id);
    expect(at(both, 'GET', '/system/health')).toBe(getRule.id);
    expect(at(buildRuleIndex([headRule]), 'GET', '/system/health')).toBeUndefined();

    const prefixGet = rule('route', '*', 'GET /system/flags*');
    expect(at(buildRuleIndex([prefixGet]), 'HEAD', '/system/flags/dark-mode')).toBe(prefixGet.id);
    // a POST rule does not cover HEAD
    expect(at(buildRuleIndex([rule('route', '*', 'POST /system/health')]), 'HEAD', '/system/health')).toBeUndefined();
  });
});

describe('rule values', () => {
  it('parses route patterns', () => {
    expect(parseRoutePattern('get /system/flags*')).toMatchObject({ normalized: 'GET /system/flags*', compiled: { method: 'GET', path: '/system/flags', prefix: true } });
    expect(parseRoutePattern('/x/')).toMatchObject({ normalized: '/x/', compiled: { method: null, path: '/x', prefix: false } });
    for (const bad of ['system', 'FETCH /x', 'GET', '/a*b', '/a?b', '/a b', 'GET  ']) expect(parseRoutePattern(bad), bad).toHaveProperty('error');
  });

  it('validates match values per scope', () => {
    expect(matchError('global', '*')).toBeNull();
    expect(matchError('global', '1.2.3.4')).toMatch(/'\*'/);
    expect(matchError('route', 'x')).toMatch(/'\*'/);
    expect(matchError('ip', '1.2.3.4')).toBeNull();
    expect(matchError('ip', '2001:db8::1')).toBeNull();
    expect(matchError('ip', '1.2.3.400')).toMatch(/address/);
    expect(matchError('api_key', 'AAAAAAAAAAAA')).toBeNull();
    expect(matchError('api_key', 'vhk_AAAAAAAAAAAA')).toMatch(/key id/);
    expect(matchError('client', '12')).toBeNull();
    expect(matchError('client', '0')).toMatch(/client id/);
  });

  it('canonicalises addresses so one host is one key', () => {
    expect(canonicalIp('2001:DB8:0::1')).toBe('2001:db8::1');
    expect(canonicalIp('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(canonicalIp('fe80::1%eth0')).toBeNull();
    expect(canonicalIp('nope')).toBeNull();
  });
});
