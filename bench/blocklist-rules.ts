import { formatIpv4, formatIpv6 } from '../src/ip-address.js';
import type { ActiveRule, MatchInput, RuleType } from '../plugins/blocklist/matcher.js';
import type { CreateRule } from '../plugins/blocklist/schemas.js';
import { parseIp } from '../src/ip-address.js';
import { normalisePath } from '../plugins/blocklist/patterns.js';

// The blocklist bench's rules and requests: 100,000 mixed rules shaped like a real feed (mostly
// single addresses, then networks of many sizes, then user-agent and path patterns, a few
// allow rules), and a pool of requests that mostly match nothing, as real traffic does.

/** A small deterministic PRNG (mulberry32), so every run uses the same rules and requests. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['scan', 'bot', 'crawl', 'spider', 'fetch', 'probe', 'harvest', 'grab', 'sniff', 'miner', 'audit', 'check', 'agent', 'client', 'tool'];

/** The share of each rule type in the mix (sums to 1). */
export const MIX: Array<[RuleType, 'v4' | 'v6' | 'sub' | 'glob' | 'prefix' | 'client', number]> = [
  ['ip', 'v4', 0.55],
  ['ip', 'v6', 0.1],
  ['cidr', 'v4', 0.15],
  ['cidr', 'v6', 0.05],
  ['user_agent', 'sub', 0.06],
  ['user_agent', 'glob', 0.02],
  ['path', 'prefix', 0.04],
  ['path', 'glob', 0.01],
  ['api_client', 'client', 0.02],
];

/** `count` rules as create bodies (what the bulk import takes), every 100th an allow rule. */
export function benchRuleBodies(count: number, seed = 42): CreateRule[] {
  const rnd = random(seed);
  const seen = new Set<string>();
  const out: CreateRule[] = [];
  const word = () => WORDS[Math.floor(rnd() * WORDS.length)]!;
  const v6 = (): number[] => [0x2001, 0x0db8, Math.floor(rnd() * 65536), Math.floor(rnd() * 65536), Math.floor(rnd() * 65536), Math.floor(rnd() * 65536), Math.floor(rnd() * 65536), Math.floor(rnd() * 65536)];
  let i = 0;
  for (const [type, kind, share] of MIX) {
    const n = Math.round(count * share);
    for (let made = 0; made < n; ) {
      let value = '';
      switch (kind) {
        case 'v4':
          // Outside 10/8 and 127/8: the bench's own client and the requests that should pass.
          value = formatIpv4(((20 + Math.floor(rnd() * 200)) * 16777216 + Math.floor(rnd() * 16777216)) >>> 0);
          break;
        case 'v6':
          value = formatIpv6(v6());
          break;
        case 'client':
          value = String(1_000_000 + Math.floor(rnd() * 1_000_000));
          break;
        case 'sub':
          value = `${word()}${word()}-${Math.floor(rnd() * 100_000)}`;
          break;
        case 'glob':
          value = `*${word()}-${Math.floor(rnd() * 100_000)}/*`;
          break;
        case 'prefix':
          value = `/${word()}/${Math.floor(rnd() * 100_000)}`;
          break;
      }
      if (type === 'cidr' && kind === 'v4') {
        // Like public feeds (FireHOL, Spamhaus DROP): mostly /24, some /16-/23, a few wider or narrower.
        const r = rnd();
        const prefix = r < 0.05 ? 8 + Math.floor(rnd() * 8) : r < 0.35 ? 16 + Math.floor(rnd() * 8) : r < 0.9 ? 24 : 25 + Math.floor(rnd() * 7);
        const n32 = (20 + Math.floor(rnd() * 200)) * 16777216 + Math.floor(rnd() * 16777216);
        const net = Math.floor(n32 / 2 ** (32 - prefix)) * 2 ** (32 - prefix);
        value = `${formatIpv4(net)}/${prefix}`;
      } else if (type === 'cidr') {
        const prefix = [32, 40, 48, 56, 64][Math.floor(rnd() * 5)]!;
        const g = v6();
        for (let k = 0; k < 8; k++) {
          const bits = prefix - k * 16;
          g[k] = bits >= 16 ? g[k]! : bits <= 0 ? 0 : g[k]! & ((0xffff << (16 - bits)) & 0xffff);
        }
        value = `${formatIpv6(g)}/${prefix}`;
      } else if (type === 'path' && kind === 'glob') {
        value = `/*/${word()}-${Math.floor(rnd() * 100_000)}.php`;
      }
      const action = i % 100 === 99 ? 'allow' : 'block';
      const key = `${type}|${action}|${value}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ type, value, action, severity: (['low', 'medium', 'high', 'critical'] as const)[i % 4], origin: 'import', reason: 'bench feed' });
      made++;
      i++;
    }
  }
  return out;
}

/** The bodies as the matcher holds them (what the state cache would load). */
export function toActiveRules(bodies: CreateRule[]): ActiveRule[] {
  return bodies.map((b, i) => ({
    id: i + 1,
    type: b.type,
    action: b.action ?? 'block',
    value: b.value,
    severity: b.severity ?? 'medium',
    origin: b.origin ?? 'import',
    policyId: null,
    policyName: null,
    mode: 'enforce',
    expiresAt: i % 10 === 0 ? Date.now() + 3_600_000 : Infinity,
  }));
}

const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'curl/8.5.0',
  'python-requests/2.31.0',
  'Go-http-client/1.1',
  'okhttp/4.12.0',
  'Valhalla-SDK/1.4 (+https://example.com)',
];
const PATHS = ['/system/info', '/api/v1/orders/12345', '/api/v1/users/me', '/system/flags/checkout/evaluate', '/live', '/static/app.js', '/a/b/../c', '/api/v1/search?q=x'];

/** Raw requests (address, user agent, URL) for the in-process check: most match nothing. */
export function benchRequests(count: number, bodies: CreateRule[], seed = 7): Array<{ ip: string; ua: string; url: string }> {
  const rnd = random(seed);
  const ips = bodies.filter((b) => b.type === 'ip').map((b) => b.value);
  const out: Array<{ ip: string; ua: string; url: string }> = [];
  for (let i = 0; i < count; i++) {
    const r = rnd();
    // 10% from a listed address, 10% IPv6, the rest random IPv4.
    const ip =
      r < 0.1
        ? ips[Math.floor(rnd() * ips.length)]!
        : r < 0.2
          ? formatIpv6([0x2001, 0x0db8, Math.floor(rnd() * 65536), 0, 0, 0, 0, Math.floor(rnd() * 65536)])
          : r < 0.25
            ? `::ffff:${formatIpv4(Math.floor(rnd() * 4294967296))}`
            : formatIpv4(Math.floor(rnd() * 4294967296));
    out.push({ ip, ua: USER_AGENTS[Math.floor(rnd() * USER_AGENTS.length)]!, url: PATHS[Math.floor(rnd() * PATHS.length)]! });
  }
  return out;
}

/** What the onRequest hook does per request: parse the address, normalise the path. */
export const toInput = (r: { ip: string; ua: string; url: string }): MatchInput => ({ ip: parseIp(r.ip), userAgent: r.ua, path: normalisePath(r.url), clientId: null });
