import { EnvError } from '../../src/env.js';
import { canonicalCidr, formatIp, parseCidr, parseIp, type ParsedIp } from '../../src/ip-address.js';
import { BlocklistMatcher, type ActiveRule } from './matcher.js';

/**
 * BLOCKLIST_ALWAYS_ALLOW: addresses and networks no rule can block and escalation never blocks,
 * the break-glass way back for operators (a bastion network) when a rule locks them out. Read
 * from the environment, so no API call or SQL can take it away; changed by restarting.
 */
export interface AlwaysAllow {
  /** Canonical entries, for the log line at start and the check endpoint. */
  readonly entries: readonly string[];
  covers(ip: ParsedIp | undefined): boolean;
}

/** Parses the comma-separated list; a bad entry stops the start (EnvError) naming it. */
export function parseAlwaysAllow(value: string): AlwaysAllow {
  const entries: string[] = [];
  const rules: ActiveRule[] = [];
  for (const raw of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    let canonical: string;
    let type: 'ip' | 'cidr';
    if (raw.includes('/')) {
      const c = parseCidr(raw);
      if ('error' in c) throw new EnvError(`invalid environment variable BLOCKLIST_ALWAYS_ALLOW: ${JSON.stringify(raw)} ${c.error}`);
      canonical = canonicalCidr(c);
      type = 'cidr';
    } else {
      const ip = parseIp(raw);
      if (!ip) throw new EnvError(`invalid environment variable BLOCKLIST_ALWAYS_ALLOW: ${JSON.stringify(raw)} is not an IPv4 or IPv6 address or network`);
      canonical = formatIp(ip);
      type = 'ip';
    }
    entries.push(canonical);
    // Held as allow rules in a matcher of their own: the same address index, never in the tables.
    rules.push({ id: -(rules.length + 1), type, action: 'allow', value: canonical, severity: 'low', origin: 'env', policyId: null, policyName: null, mode: 'enforce', expiresAt: Infinity });
  }
  if (rules.length === 0) return { entries, covers: () => false };
  const matcher = new BlocklistMatcher(rules);
  return {
    entries,
    covers: (ip) => ip !== undefined && matcher.allows({ ip, userAgent: '', path: '/', clientId: null }, 0) !== null,
  };
}
