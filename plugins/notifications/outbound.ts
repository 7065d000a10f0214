import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Outgoing HTTP for webhooks and SMS providers, with the SSRF guard: a target whose address is
 * loopback, private, link-local, CGNAT, unique-local, IPv4-mapped (or otherwise not a public
 * unicast address) is refused unless `WEBHOOK_ALLOW_PRIVATE=true`. The check runs on the
 * addresses DNS returned, inside the socket's own lookup, so the address checked is the address
 * connected to (no DNS-rebinding window), and every address of a name is checked, not just the
 * first. IP literals in any spelling the URL parser accepts (`2130706433`, `0x7f.1`, `127.1`,
 * `[::ffff:7f00:1]`) reach the check in their normal form; `localhost` names are refused by
 * name. Redirects are not followed: a 3xx is a failed delivery.
 */
const RANGES: ReadonlyArray<{ reason: string; v4?: Array<[string, number]>; v6?: Array<[string, number]> }> = [
  { reason: 'unspecified', v4: [['0.0.0.0', 8]], v6: [['::', 128]] },
  { reason: 'loopback', v4: [['127.0.0.0', 8]], v6: [['::1', 128]] },
  { reason: 'private', v4: [['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16]] },
  { reason: 'link-local', v4: [['169.254.0.0', 16]], v6: [['fe80::', 10]] },
  { reason: 'CGNAT', v4: [['100.64.0.0', 10]] },
  { reason: 'unique-local', v6: [['fc00::', 7]] },
  { reason: 'IPv4-mapped', v6: [['::ffff:0:0', 96]] },
  // Older ways of writing an IPv4 address inside IPv6 (`::7f00:1`, `::ffff:0:7f00:1`): a stack
  // that still honours them reaches the IPv4 address, so none is a public IPv6 target.
  { reason: 'IPv4-compatible', v6: [['::', 96]] },
  { reason: 'IPv4-translated', v6: [['::ffff:0:0:0', 96]] },
  { reason: 'NAT64', v6: [['64:ff9b::', 96], ['64:ff9b:1::', 48]] },
  // Teredo hides the IPv4 address it tunnels to; 6to4 is checked by its embedded address below.
  { reason: 'Teredo', v6: [['2001::', 32]] },
  { reason: 'reserved', v4: [['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['240.0.0.0', 4]], v6: [['100::', 64], ['2001:db8::', 32]] },
  { reason: 'multicast', v4: [['224.0.0.0', 4]], v6: [['ff00::', 8]] },
];

// One list per family: Node's BlockList matches an IPv4 address against IPv4-mapped IPv6 subnets
// (and the reverse), so the families are kept apart and the mapped range is checked on its own.
const listsOf = (family: 'ipv4' | 'ipv6') =>
  RANGES.flatMap(({ reason, v4 = [], v6 = [] }) => {
    const subnets = family === 'ipv4' ? v4 : v6;
    if (subnets.length === 0) return [];
    const list = new BlockList();
    for (const [net, prefix] of subnets) list.addSubnet(net, prefix, family);
    return [{ reason, list }];
  });
const LISTS = { ipv4: listsOf('ipv4'), ipv6: listsOf('ipv6') };
const IPV4_MAPPED = LISTS.ipv6.find((l) => l.reason === 'IPv4-mapped')!.list;
const SIX_TO_FOUR = new BlockList();
SIX_TO_FOUR.addSubnet('2002::', 16, 'ipv6');

/** The IPv4 address a 6to4 address (2002:AABB:CCDD::/48) routes to. */
function sixToFourTarget(address: string): string {
  // The URL parser writes the address in its normal form: hex groups, at most one `::`, no dotted tail.
  const [head = '', tail] = new URL(`http://[${address}]/`).hostname.slice(1, -1).split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right].map((g) => parseInt(g, 16));
  const [hi = 0, lo = 0] = [groups[1], groups[2]];
  return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.');
}

/** Why `address` may not be a target (`'loopback'`, `'private'`, ...), or null for a public address. */
export function refusedRange(address: string): string | null {
  // A zone id (`fe80::1%eth0`) names an interface, which only local addresses need.
  if (address.includes('%')) return 'scoped (zone id)';
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  if (family === 6 && IPV4_MAPPED.check(address, 'ipv6')) return 'IPv4-mapped';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const reason = LISTS[type].find((l) => l.list.check(address, type))?.reason ?? null;
  if (reason === null && family === 6 && SIX_TO_FOUR.check(address, 'ipv6')) {
    const inner = refusedRange(sixToFourTarget(address));
    return inner && `6to4 of ${inner}`;
  }
  return reason;
}

/**
 * `localhost` and every name under it (RFC 6761 §6.3), with or without the final dot: local by
 * definition, whatever DNS says (a resolver may not know `localhost.`, which would turn the
 * refusal into a retried lookup error).
 */
export const isLocalName = (host: string): boolean => /(^|\.)localhost\.?$/i.test(host);

/** A delivery the guard refused: the same answer on every attempt, so the row goes dead at once. */
export class TargetRefusedError extends Error {
  readonly code = 'NOTIFY_TARGET_REFUSED';
}

const refusal = (host: string, address: string, reason: string) =>
  new TargetRefusedError(`target ${host} resolves to ${reason} address ${address}; set WEBHOOK_ALLOW_PRIVATE=true to allow it`);

/** The host of a URL as `isIP` and DNS take it (IPv6 literals lose their brackets). */
export const hostOf = (url: URL): string => url.hostname.replace(/^\[|\]$/g, '');

/** A refusal for a URL whose host is an IP literal (no DNS involved), or null. */
export function refuseLiteral(url: URL, allowPrivate: boolean): TargetRefusedError | null {
  const host = hostOf(url);
  if (allowPrivate) return null;
  if (isLocalName(host)) return new TargetRefusedError(`target ${host} is a loopback name; set WEBHOOK_ALLOW_PRIVATE=true to allow it`);
  if (isIP(host) === 0) return null;
  const reason = refusedRange(host);
  return reason ? refusal(host, host, reason) : null;
}

/** `dns.lookup` with `all: true`, the one resolver call the guard makes (a seam for tests). */
export type ResolveAll = (hostname: string, options: LookupOptions & { all: true }, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;
const resolveAll: ResolveAll = (hostname, options, callback) => dnsLookup(hostname, options, callback);

/** The socket lookup that refuses a name when any of its addresses is in a refused range. */
export function guardedLookup(allowPrivate: boolean, resolve: ResolveAll = resolveAll): LookupFunction {
  return (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    if (!allowPrivate && isLocalName(hostname)) return callback(new TargetRefusedError(`target ${hostname} is a loopback name; set WEBHOOK_ALLOW_PRIVATE=true to allow it`), '');
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      if (!allowPrivate) {
        // Every address, not just the first: the socket may fall back to any of them.
        for (const a of addresses) {
          const reason = refusedRange(a.address);
          if (reason) return callback(refusal(hostname, a.address, reason), '');
        }
      }
      if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
      if (options.all) return callback(null, addresses);
      return callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

export interface HttpAnswer {
  status: number;
  /** `Retry-After` in milliseconds (seconds or an HTTP date), when the target sent one. */
  retryAfterMs: number | null;
}

export interface PostOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Seconds or an HTTP date, capped at a day; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  const ms = /^\d{1,10}$/.test(trimmed) ? Number(trimmed) * 1000 : Date.parse(trimmed) - now;
  if (!Number.isFinite(ms)) return null;
  return Math.min(Math.max(ms, 0), 86_400_000);
}

/** How much of an answer's (unused) body is read to keep its socket; beyond it the socket is dropped. */
export const BODY_DRAIN_BYTES = 1 << 20;

/**
 * The address to connect to for `host` (a name or an IP literal, IPv6 with or without brackets),
 * through the same guard as HTTP targets: rejects with a TargetRefusedError for a refused address.
 * For clients that do their own DNS (the SMTP transport): they are handed the checked address.
 */
export function resolveGuarded(host: string, allowPrivate: boolean, resolve: ResolveAll = resolveAll): Promise<string> {
  const bare = host.replace(/^\[|\]$/g, '');
  const lookup = guardedLookup(allowPrivate, resolve);
  return new Promise((ok, fail) => lookup(bare, {}, (err, address) => (err ? fail(err) : ok(typeof address === 'string' ? address : address[0]!.address))));
}

export interface OutboundHttp {
  /** POSTs `body`; resolves with the status once the answer is read, rejects on refusal, timeout or a network error. */
  post(url: URL, body: string, headers: Record<string, string>, opts: PostOptions): Promise<HttpAnswer>;
  close(): void;
}

export function createOutboundHttp({ allowPrivate, userAgent }: { allowPrivate: boolean; userAgent: string }): OutboundHttp {
  const lookup = guardedLookup(allowPrivate);
  // Keep-alive pools, with the guard as their lookup: a socket is only ever opened to a checked address.
  const agents = { http: new HttpAgent({ keepAlive: true, maxSockets: 64, lookup }), https: new HttpsAgent({ keepAlive: true, maxSockets: 64, lookup }) };

  return {
    post(url, body, headers, { timeoutMs, signal }) {
      const refused = refuseLiteral(url, allowPrivate);
      if (refused) return Promise.reject(refused);
      // Checked at channel creation too; here for a URL stored before that check existed.
      if (url.username || url.password) return Promise.reject(new TargetRefusedError('target URL carries credentials'));
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(new TargetRefusedError(`scheme ${url.protocol} is not http or https`));
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      return new Promise<HttpAnswer>((resolve, reject) => {
        const req = send(url, {
          method: 'POST',
          agent: url.protocol === 'https:' ? agents.https : agents.http,
          headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': userAgent, ...headers },
        });
        const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        const onAbort = () => req.destroy(new Error('delivery aborted (shutdown)'));
        signal?.addEventListener('abort', onAbort, { once: true });
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        };
        req.on('error', (err) => {
          done();
          reject(err);
        });
        req.on('response', (res: IncomingMessage) => {
          const header = res.headers['retry-after'];
          // The status is the answer: a receiver that said 2xx has the message, however slowly its
          // body follows (counting that as "no answer" would deliver it twice).
          done();
          resolve({ status: res.statusCode ?? 0, retryAfterMs: parseRetryAfter(Array.isArray(header) ? header[0] : header) });
          // The body is not needed: drained so the socket goes back to the pool, within the same
          // time and at most BODY_DRAIN_BYTES, after which the socket is dropped instead.
          let bytes = 0;
          const drop = () => res.destroy();
          const bodyTimer = setTimeout(drop, timeoutMs);
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes > BODY_DRAIN_BYTES) drop();
          });
          res.on('close', () => clearTimeout(bodyTimer));
          res.on('error', () => clearTimeout(bodyTimer));
        });
        req.end(body);
      });
    },
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
