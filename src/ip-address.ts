/**
 * IP addresses and CIDRs as the kernel keys them: the blocklist's rules, the rate limiter's and
 * the honeypots' client addresses (`clientAddressText`). IPv4 is a 32-bit unsigned number; IPv6 is
 * eight 16-bit groups. IPv4-mapped IPv6 (`::ffff:1.2.3.4`, and `::ffff:0:0/96` ranges) is turned
 * into IPv4 everywhere, so a rule for `1.2.3.4` matches a dual-stack socket's `::ffff:1.2.3.4`.
 * Parsed by hand: this runs on every request, and `node:net`'s `isIP` plus a canonicalising
 * `URL` round trip cost microseconds.
 */

export type ParsedIp = { v: 4; n: number } | { v: 6; g: number[] };

/** Dotted quad to a uint32; undefined unless exactly four decimal octets 0-255 (no leading zeros). */
export function parseIpv4(s: string): number | undefined {
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return undefined;
      n = n * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      // "01" is ambiguous (octal in some parsers): refused, like node:net.
      if (digits === 1 && octet === 0) return undefined;
      octet = octet * 10 + (c - 48);
      if (octet > 255) return undefined;
      digits++;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return n * 256 + octet;
}

/** IPv6 text (with `::` and an optional dotted IPv4 tail) to eight groups; no zone ids. */
export function parseIpv6(s: string): number[] | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parseSide = (side: string, allowTail: boolean): number[] | undefined => {
    if (side === '') return [];
    const parts = side.split(':');
    const out: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (allowTail && i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (v4 === undefined) return undefined;
        out.push(Math.floor(v4 / 65536), v4 % 65536);
        continue;
      }
      if (p.length === 0 || p.length > 4 || !/^[0-9a-fA-F]+$/.test(p)) return undefined;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  if (halves.length === 1) {
    const g = parseSide(s, true);
    return g && g.length === 8 ? g : undefined;
  }
  const head = parseSide(halves[0]!, false);
  const tail = parseSide(halves[1]!, true);
  if (!head || !tail || head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

const isMapped = (g: number[]): boolean => g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff;

/** An address as sent (request.ip, a query value, a rule value); mapped IPv6 becomes IPv4. */
export function parseIp(s: string): ParsedIp | undefined {
  if (s.includes(':')) {
    const g = parseIpv6(s);
    if (!g) return undefined;
    if (isMapped(g)) return { v: 4, n: g[6]! * 65536 + g[7]! };
    return { v: 6, g };
  }
  const n = parseIpv4(s);
  return n === undefined ? undefined : { v: 4, n };
}

/**
 * A client address as a proxy may write it (request.ip honours TRUST_PROXY, so it is whatever
 * the trusted hop put in `X-Forwarded-For`): a bare address, `a.b.c.d:port`, `[v6]:port`,
 * `[v6]`, or `v6%zone`. The port and the zone id are dropped (a zone names an interface of the
 * proxy, not a different client); mapped IPv6 becomes IPv4 (`parseIp`). Undefined when it still
 * does not parse (a hostname): such a request is matched by no address rule and never escalated.
 */
export function parseClientAddress(raw: string): ParsedIp | undefined {
  const direct = parseIp(raw);
  if (direct) return direct;
  let s = raw.trim();
  if (s.charCodeAt(0) === 91 /* [ */) {
    const close = s.indexOf(']');
    if (close === -1) return undefined;
    const rest = s.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    s = s.slice(1, close);
  } else {
    const colon = s.indexOf(':');
    // One colon: IPv4 with a port (an IPv6 address has at least two).
    if (colon !== -1 && colon === s.lastIndexOf(':')) {
      if (!/^\d{1,5}$/.test(s.slice(colon + 1))) return undefined;
      s = s.slice(0, colon);
    }
  }
  const zone = s.indexOf('%');
  if (zone !== -1 && s.includes(':')) s = s.slice(0, zone);
  return parseIp(s);
}

export function formatIpv4(n: number): string {
  return `${Math.floor(n / 16777216)}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

/** RFC 5952 text: lower case, the longest run of two or more zero groups as `::`. */
export function formatIpv6(g: number[]): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export const formatIp = (ip: ParsedIp): string => (ip.v === 4 ? formatIpv4(ip.n) : formatIpv6(ip.g));

/**
 * The canonical text of a request's client address (`request.ip`, which honours TRUST_PROXY),
 * read as `parseClientAddress` reads it: a proxy's `a.b.c.d:port`, `[v6]:port` or `v6%zone`
 * is the bare address, `::ffff:1.2.3.4` is `1.2.3.4`, IPv6 is lower-case and compressed. Null when
 * it is no IP address. Every pack that keys on the client address uses this, so one client is
 * one key for the blocklist, the rate limiter and the honeypots alike.
 */
export function clientAddressText(raw: string): string | null {
  const ip = parseClientAddress(raw);
  return ip ? formatIp(ip) : null;
}

/** Canonical text of an address (what rules store and counters key on); undefined when invalid. */
export function canonicalAddress(s: string): string | undefined {
  const ip = parseIp(s.trim());
  return ip && formatIp(ip);
}

export interface ParsedCidr {
  v: 4 | 6;
  /** Network address (host bits zero) and prefix length. */
  ip: ParsedIp;
  prefix: number;
}

/**
 * `a.b.c.d/n` or `x::/n`; host bits must be zero (`10.0.0.1/8` is refused: it usually means a
 * typo). A mapped range of /96 or longer becomes the IPv4 range it covers.
 */
export function parseCidr(s: string): ParsedCidr | { error: string } {
  const slash = s.indexOf('/');
  if (slash === -1) return { error: 'must be an address with a prefix length (a.b.c.d/n or x:y::/n)' };
  const addr = s.slice(0, slash);
  const lenText = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) return { error: 'the prefix length must be a number' };
  let prefix = Number(lenText);
  let ip: ParsedIp | undefined;
  if (addr.includes(':')) {
    const g = parseIpv6(addr);
    if (!g) return { error: 'is not a valid IPv6 network' };
    if (prefix > 128) return { error: 'an IPv6 prefix length is at most 128' };
    if (isMapped(g) && prefix >= 96) {
      ip = { v: 4, n: g[6]! * 65536 + g[7]! };
      prefix -= 96;
    } else ip = { v: 6, g };
  } else {
    const n = parseIpv4(addr);
    if (n === undefined) return { error: 'is not a valid IPv4 network' };
    if (prefix > 32) return { error: 'an IPv4 prefix length is at most 32' };
    ip = { v: 4, n };
  }
  const masked = maskIp(ip, prefix);
  if (ip.v === 4 ? masked.n !== ip.n : masked.g.some((x, i) => x !== ip.g[i])) {
    return { error: `has host bits set: the network is ${formatIp(ip.v === 4 ? { v: 4, n: masked.n } : { v: 6, g: masked.g })}/${prefix}` };
  }
  return { v: ip.v, ip, prefix };
}

/** Keeps the first `prefix` bits. */
function maskIp(ip: ParsedIp, prefix: number): { n: number; g: number[] } {
  if (ip.v === 4) return { n: v4Network(ip.n, prefix), g: [] };
  return { n: 0, g: ip.g.map((x, i) => x & groupMask(prefix - i * 16)) };
}

const groupMask = (bits: number): number => (bits >= 16 ? 0xffff : bits <= 0 ? 0 : (0xffff << (16 - bits)) & 0xffff);

/** The network number of an IPv4 address under a prefix, as a key (the address shifted right). */
export const v4Network = (n: number, prefix: number): number => (prefix === 0 ? 0 : prefix === 32 ? n : Math.floor(n / 2 ** (32 - prefix)) * 2 ** (32 - prefix));

/**
 * The key of an IPv6 address's network under a prefix: the masked groups that prefix covers, one
 * UTF-16 code unit per 16-bit group (cheap to build on every request; never shown to anyone).
 */
export function v6Network(g: number[], prefix: number): string {
  switch (Math.ceil(prefix / 16)) {
    case 8:
      return String.fromCharCode(g[0]!, g[1]!, g[2]!, g[3]!, g[4]!, g[5]!, g[6]!, g[7]! & groupMask(prefix - 112));
    default: {
      let key = '';
      const groups = Math.ceil(prefix / 16);
      for (let i = 0; i < groups; i++) key += String.fromCharCode(g[i]! & groupMask(prefix - i * 16));
      return key;
    }
  }
}

export const canonicalCidr = (c: ParsedCidr): string => `${formatIp(c.ip)}/${c.prefix}`;
