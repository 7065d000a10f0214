import { describe, expect, it } from 'vitest';
import { EnvError } from '../../src/env.js';
import { canonicalAddress, formatIp, parseCidr, parseClientAddress, parseIp } from '../../src/ip-address.js';
import { parseAlwaysAllow } from './always-allow.js';
import { BlocklistMatcher, matcherStats, type ActiveRule, type MatchInput } from './matcher.js';
import { globMatch, normalisePath, SubstringIndex } from './patterns.js';

let nextId = 1;
const r = (type: ActiveRule['type'], value: string, extra: Partial<ActiveRule> = {}): ActiveRule => ({
  id: nextId++,
  type,
  value,
  action: 'block',
  severity: 'medium',
  origin: 'manual',
  policyId: null,
  policyName: null,
  mode: 'enforce',
  expiresAt: Infinity,
  ...extra,
});
const req = (ip: string, extra: Partial<MatchInput> = {}): MatchInput => ({ ip: parseIp(ip), userAgent: '', path: '/', clientId: null, ...extra });

describe('addresses', () => {
  it('parses and canonicalises IPv4, IPv6 and IPv4-mapped IPv6', () => {
    expect(canonicalAddress('192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalAddress('::FFFF:192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalAddress('::ffff:c000:201')).toBe('192.0.2.1');
    expect(canonicalAddress('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalAddress('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalAddress('::')).toBe('::');
    expect(canonicalAddress('::1')).toBe('::1');
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', 'fe80::1%eth0', ':::', '1::2::3', 'g::1', '1:2:3:4:5:6:7:8:9', '12345::']) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it('parses networks, refuses host bits, and maps ::ffff:0:0/96 ranges to IPv4', () => {
    expect(parseCidr('10.0.0.0/8')).toMatchObject({ v: 4, prefix: 8 });
    expect(parseCidr('10.0.0.1/8')).toMatchObject({ error: expect.stringContaining('10.0.0.0/8') });
    expect(parseCidr('::ffff:10.0.0.0/104')).toMatchObject({ v: 4, prefix: 8 });
    expect(parseCidr('2001:db8::/32')).toMatchObject({ v: 6, prefix: 32 });
    expect(parseCidr('2001:db8::1/64')).toHaveProperty('error');
    expect(parseCidr('0.0.0.0/0')).toMatchObject({ v: 4, prefix: 0 });
    expect(parseCidr('10.0.0.0')).toHaveProperty('error');
    expect(parseCidr('10.0.0.0/x')).toHaveProperty('error');
  });
});

describe('patterns', () => {
  it('matches globs with * and ? only, anchored, in linear-backtracking time', () => {
    expect(globMatch('*bot*', 'googlebot/2.1')).toBe(true);
    expect(globMatch('bot*', 'googlebot')).toBe(false);
    expect(globMatch('/wp-*.php', '/wp-login.php')).toBe(true);
    expect(globMatch('/wp-?.php', '/wp-ab.php')).toBe(false);
    expect(globMatch('a.c', 'abc')).toBe(false);
    expect(globMatch('*', '')).toBe(true);
    // The classic catastrophic case for a backtracking regex finishes at once here.
    expect(globMatch('*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000))).toBe(false);
  });

  it('finds every substring in one pass', () => {
    const index = new SubstringIndex<string>();
    for (const p of ['he', 'she', 'his', 'hers']) index.add(p, p);
    const found: string[] = [];
    index.scan('ushers', (p) => found.push(p));
    expect(found.sort()).toEqual(['he', 'hers', 'she']);
  });

  it('normalises paths as the blocklist matches them', () => {
    const cases: Array<[string, string]> = [
      ['/a/b', '/a/b'],
      ['/a/b?x=/admin', '/a/b'],
      ['/a/%62', '/a/b'],
      ['/a/%252e%252e/b', '/b'],
      ['//a///b', '/a/b'],
      ['/a/./b/', '/a/b/'],
      ['/a/../../b', '/b'],
      ['/a/b/..', '/a/'],
      ['/a\\..\\b', '/b'],
      ['/%zz', '/%zz'],
      ['/', '/'],
    ];
    for (const [raw, want] of cases) expect(normalisePath(raw), raw).toBe(want);
  });
});

describe('blocklistMatcher', () => {
  it('decides by allow first, then enforce over monitor, then severity, then age', () => {
    const low = r('cidr', '10.0.0.0/8', { severity: 'low' });
    const critical = r('cidr', '10.1.0.0/16', { severity: 'critical' });
    const monitorCritical = r('ip', '10.1.2.3', { severity: 'critical', mode: 'monitor' });
    const allow = r('ip', '10.1.2.4', { action: 'allow', severity: 'low' });
    const m = new BlocklistMatcher([low, critical, monitorCritical, allow]);
    const now = Date.now();
    expect(m.decide(req('10.1.2.3'), now)).toEqual({ outcome: 'block', rule: critical });
    expect(m.decide(req('10.1.2.4'), now)).toEqual({ outcome: 'allow', rule: allow });
    expect(m.decide(req('10.2.0.1'), now)).toEqual({ outcome: 'block', rule: low });
    expect(m.decide(req('11.0.0.1'), now)).toBeNull();
    const onlyMonitor = new BlocklistMatcher([monitorCritical]);
    expect(onlyMonitor.decide(req('10.1.2.3'), now)).toEqual({ outcome: 'monitor', rule: monitorCritical });
  });

  it('covers networks of every width, nested, including /0 and those wider than /8', () => {
    const rules = [r('cidr', '0.0.0.0/0'), r('cidr', '128.0.0.0/1'), r('cidr', '192.168.0.0/16'), r('cidr', '192.168.1.0/24'), r('cidr', '192.168.1.128/25'), r('ip', '192.168.1.200')];
    const m = new BlocklistMatcher(rules);
    const ids = (ip: string) => m.matching(req(ip), Date.now()).map((x) => x.id).sort((a, b) => a - b);
    expect(ids('192.168.1.200')).toEqual(rules.map((x) => x.id));
    expect(ids('192.168.1.127')).toEqual([rules[0]!.id, rules[1]!.id, rules[2]!.id, rules[3]!.id]);
    expect(ids('192.169.0.1')).toEqual([rules[0]!.id, rules[1]!.id]);
    expect(ids('1.1.1.1')).toEqual([rules[0]!.id]);
  });

  it('matches IPv6 networks by prefix and mapped addresses as IPv4', () => {
    const net = r('cidr', '2001:db8:1234::/48');
    const host = r('ip', '2001:db8::1');
    const v4 = r('ip', '198.51.100.1');
    const m = new BlocklistMatcher([net, host, v4]);
    const now = Date.now();
    expect(m.decide(req('2001:db8:1234:ffff::1'), now)?.rule).toBe(net);
    expect(m.decide(req('2001:db8:1235::1'), now)).toBeNull();
    expect(m.decide(req('2001:0db8:0000::0001'), now)?.rule).toBe(host);
    expect(m.decide(req('::ffff:198.51.100.1'), now)?.rule).toBe(v4);
  });

  it('ignores expired rules at check time', () => {
    const now = Date.now();
    const expired = r('ip', '192.0.2.1', { expiresAt: now - 1 });
    const live = r('ip', '192.0.2.2', { expiresAt: now + 1000 });
    const m = new BlocklistMatcher([expired, live]);
    expect(m.decide(req('192.0.2.1'), now)).toBeNull();
    expect(m.decide(req('192.0.2.2'), now)?.rule).toBe(live);
    expect(m.decide(req('192.0.2.2'), now + 1000)).toBeNull();
  });

  it('matches user agents and paths, substrings, prefixes and globs, and remembers texts', () => {
    const ua = r('user_agent', 'sqlmap');
    const uaGlob = r('user_agent', 'nikto/*');
    const path = r('path', '/admin');
    const pathGlob = r('path', '/*/.git/*');
    const m = new BlocklistMatcher([ua, uaGlob, path, pathGlob]);
    const now = Date.now();
    expect(m.decide(req('192.0.2.9', { userAgent: 'Mozilla SQLMap/1.7' }), now)?.rule).toBe(ua);
    expect(m.decide(req('192.0.2.9', { userAgent: 'Nikto/2.5' }), now)?.rule).toBe(uaGlob);
    expect(m.decide(req('192.0.2.9', { userAgent: 'xnikto/2.5' }), now)).toBeNull();
    expect(m.decide(req('192.0.2.9', { path: '/administrator' }), now)?.rule).toBe(path);
    expect(m.decide(req('192.0.2.9', { path: '/app/.git/config' }), now)?.rule).toBe(pathGlob);
    expect(m.decide(req('192.0.2.9', { path: '/app/git/config' }), now)).toBeNull();
    // Asked again (now from the memo), the same answers.
    expect(m.decide(req('192.0.2.9', { userAgent: 'Mozilla SQLMap/1.7' }), now)?.rule).toBe(ua);
    expect(m.decide(req('192.0.2.9', { path: '/app/.git/config' }), now)?.rule).toBe(pathGlob);
  });

  it('decides API clients only when the client is known', () => {
    const client = r('api_client', '42');
    const allowClient = r('api_client', '43', { action: 'allow' });
    const m = new BlocklistMatcher([client, allowClient]);
    expect(m.hasClientRules).toBe(true);
    expect(m.hasClientAllowRules).toBe(true);
    expect(m.decide(req('192.0.2.9'), Date.now())).toBeNull();
    expect(m.decideClient(42, Date.now())?.rule).toBe(client);
    expect(m.decideClient(43, Date.now())).toEqual({ outcome: 'allow', rule: allowClient });
    expect(m.decideClient(44, Date.now())).toBeNull();
  });
});

describe('outside tester findings', () => {
  it('tries each candidate glob once per text, however often its literal occurs (linear, not quadratic)', () => {
    const quadratic = r('user_agent', '*a*a*a*a*a*a*a*a*a*a*a*a*b');
    const nikto = r('user_agent', '*nikto*scan*');
    const pathGlob = r('path', '/*a*a*a*a*a*a*b');
    const ua = new BlocklistMatcher([quadratic, nikto]);
    const paths = new BlocklistMatcher([pathGlob]);
    const tests = (input: MatchInput, m = input.path === '/' ? ua : paths) => {
      const before = matcherStats.globTests;
      const decision = m.decide(input, 0);
      return { decision, tests: matcherStats.globTests - before };
    };
    // 16,000 occurrences of the literal 'a': one glob test (was 16,000 whole-text tests).
    expect(tests(req('192.0.2.1', { userAgent: 'a'.repeat(16_000) }))).toEqual({ decision: null, tests: 1 });
    expect(tests(req('192.0.2.1', { userAgent: 'nikto'.repeat(3000) }))).toEqual({ decision: null, tests: 1 });
    // A path is tried as routed and, for a glob that can end on a slash, with the slash: twice at most.
    expect(tests(req('192.0.2.1', { path: '/a'.repeat(3500) })).tests).toBeLessThanOrEqual(2);
    // Still matching what it should.
    expect(tests(req('192.0.2.1', { userAgent: `${'a'.repeat(100)}b` })).decision?.rule).toBe(quadratic);
    expect(tests(req('192.0.2.1', { userAgent: 'Nikto/2.5 (port scan)' })).decision?.rule).toBe(nikto);
    expect(tests(req('192.0.2.1', { path: `/${'a/'.repeat(10)}b` })).decision?.rule).toBe(pathGlob);
    // A user agent past 4 KiB: globs judge its first 4 KiB; substring rules the whole of it.
    const tail = r('user_agent', 'tailscanner');
    const m2 = new BlocklistMatcher([r('user_agent', '*x'), tail]);
    expect(m2.decide(req('192.0.2.1', { userAgent: `${'a'.repeat(5000)}x` }), 0)).toBeNull();
    expect(m2.decide(req('192.0.2.1', { userAgent: `${'a'.repeat(5000)}tailscanner` }), 0)?.rule).toBe(tail);
  });

  it('matches a path with and without one trailing slash, as the router routes it', () => {
    const glob = r('path', '/system/security/polic?es');
    const prefix = r('path', '/admin/');
    const slashGlob = r('path', '/api/v?/users/*');
    const m = new BlocklistMatcher([glob, prefix, slashGlob]);
    const at = (path: string) => m.decide(req('192.0.2.1', { path }), 0)?.rule ?? null;
    expect(at('/system/security/policies')).toBe(glob);
    expect(at('/system/security/policies/')).toBe(glob);
    expect(at('/system/security/policies/x')).toBeNull();
    expect(at('/admin')).toBe(prefix);
    expect(at('/admin/')).toBe(prefix);
    expect(at('/admin/x')).toBe(prefix);
    expect(at('/administrator')).toBeNull();
    expect(at('/api/v1/users')).toBe(slashGlob);
    expect(at('/api/v1/users/')).toBe(slashGlob);
    expect(at('/api/v1/user')).toBeNull();
    expect(at('/')).toBeNull();
  });

  it('reads proxy-written client addresses: ports, brackets and zone ids dropped', () => {
    const text = (s: string) => {
      const ip = parseClientAddress(s);
      return ip ? formatIp(ip) : undefined;
    };
    expect(text('203.0.113.7')).toBe('203.0.113.7');
    expect(text('203.0.113.7:1234')).toBe('203.0.113.7');
    expect(text('[2001:db8::5]:80')).toBe('2001:db8::5');
    expect(text('[2001:db8::5]')).toBe('2001:db8::5');
    expect(text('fe80::1%eth0')).toBe('fe80::1');
    expect(text('[fe80::1%25eth0]:8080')).toBe('fe80::1');
    expect(text('[::ffff:203.0.113.7]:443')).toBe('203.0.113.7');
    expect(text('::ffff:203.0.113.7')).toBe('203.0.113.7');
    for (const bad of ['evil-host:99', 'evil-host', '203.0.113.7:', '203.0.113.7:http', '[2001:db8::5]:x', '[2001:db8::5', '1.2.3.4%eth0', '']) expect(text(bad), bad).toBeUndefined();
  });

  it('parses BLOCKLIST_ALWAYS_ALLOW and refuses a bad entry at start', () => {
    const list = parseAlwaysAllow(' 10.0.0.0/8, 2001:db8::/32 ,192.0.2.9,');
    expect(list.entries).toEqual(['10.0.0.0/8', '2001:db8::/32', '192.0.2.9']);
    expect(list.covers(parseIp('10.1.2.3'))).toBe(true);
    expect(list.covers(parseIp('::ffff:10.1.2.3'))).toBe(true);
    expect(list.covers(parseIp('2001:db8:1::1'))).toBe(true);
    expect(list.covers(parseIp('192.0.2.9'))).toBe(true);
    expect(list.covers(parseIp('192.0.2.10'))).toBe(false);
    expect(list.covers(undefined)).toBe(false);
    expect(parseAlwaysAllow('').covers(parseIp('10.0.0.1'))).toBe(false);
    expect(() => parseAlwaysAllow('10.0.0.1/8')).toThrow(EnvError);
    expect(() => parseAlwaysAllow('10.0.0.0/8,bastion.example')).toThrow(/BLOCKLIST_ALWAYS_ALLOW: "bastion.example"/);
  });
});
