import { hash, timingSafeEqual } from 'node:crypto';
import type { Caller } from '../../src/access.js';
import { API_KEY_PATTERN, parseApiKey } from './key-format.js';
import type { CredentialRows } from './service.js';

interface KnownKey {
  secretHash: Buffer;
  /** Expiry in epoch ms; Infinity when the key does not expire. */
  expiresAt: number;
  clientActive: boolean;
  /** Built once per reload, shared by every request made with the key. */
  caller: Caller;
  /**
   * The token's secret and checksum (38 bytes) after the first request that proved them against
   * `secretHash`; later requests compare against these in constant time instead of hashing again.
   * Held only in this snapshot: a rebuild (any key or client change) forgets it.
   */
  seen: Buffer | null;
}

export type Verification =
  | { ok: true; caller: Caller }
  | { ok: false; reason: 'missing' | 'malformed' | 'unknown' | 'mismatch' | 'expired' | 'suspended' };

/**
 * The in-memory credential check every request goes through: parse (format and checksum), look up
 * the public key id, compare SHA-256 of the secret in constant time, then expiry and client
 * status. After the first sight of a key its secret and checksum are compared directly, still in
 * constant time (~1 µs less per request than hashing; npm run bench). No database access; the
 * snapshot is rebuilt, and what it has seen forgotten, when keys or clients change.
 */
export interface CredentialVerifier {
  verify(token: string | undefined, now?: number): Verification;
  readonly size: number;
}

/** Secret (32) and checksum (6) at the end of a token in the format. */
const TAIL_LENGTH = 38;

export function buildVerifier(rows: CredentialRows, opts: { compare?: (a: Buffer, b: Buffer) => boolean } = {}): CredentialVerifier {
  const compare = opts.compare ?? timingSafeEqual;
  const clients = new Map(rows.clients.map((c) => [c.id, c]));
  const keys = new Map<string, KnownKey>();
  for (const k of rows.keys) {
    const client = clients.get(k.clientId);
    if (!client) continue;
    // A key can never hold more than its client: narrowing a client narrows its keys at once.
    const clientScopes = new Set(client.scopes);
    keys.set(k.keyId, {
      secretHash: Buffer.from(k.secretHash, 'hex'),
      expiresAt: k.expiresAt ? k.expiresAt.getTime() : Infinity,
      clientActive: client.status === 'active',
      caller: Object.freeze({
        clientId: client.id,
        clientName: client.name,
        keyId: k.keyId,
        scopes: new Set(k.scopes.filter((s) => clientScopes.has(s))),
        rateLimit: client.rateLimitMax !== null && client.rateLimitWindowSeconds !== null ? { max: client.rateLimitMax, windowSeconds: client.rateLimitWindowSeconds } : null,
        dailyQuota: client.dailyQuota,
      }),
      seen: null,
    });
  }
  // Compared against when the key id is unknown, so a miss costs what a hit costs.
  const decoy = Buffer.alloc(32);
  // The presented secret and checksum, written here for the comparison (no allocation per request).
  const presentedTail = Buffer.alloc(TAIL_LENGTH);

  const accept = (known: KnownKey, now: number): Verification => {
    if (known.expiresAt <= now) return { ok: false, reason: 'expired' };
    if (!known.clientActive) return { ok: false, reason: 'suspended' };
    return { ok: true, caller: known.caller };
  };

  return {
    size: keys.size,
    verify(token, now = Date.now()) {
      if (!token) return { ok: false, reason: 'missing' };
      // After the first sight of a key: one constant-time comparison of the secret and checksum,
      // no checksum computation and no hash. Any other secret or checksum for this key id fails it.
      const format = API_KEY_PATTERN.exec(token);
      const seenKey = format ? keys.get(format[1]!) : undefined;
      if (seenKey?.seen) {
        presentedTail.write(token.slice(token.length - TAIL_LENGTH), 0, 'latin1');
        if (compare(presentedTail, seenKey.seen)) return accept(seenKey, now);
        return { ok: false, reason: parseApiKey(token) ? 'mismatch' : 'malformed' };
      }

      const parsed = parseApiKey(token);
      if (!parsed) return { ok: false, reason: 'malformed' };
      // One-shot hash: about half the cost of createHash().update().digest() per request.
      const presented = hash('sha256', parsed.secret, 'buffer');
      const known = keys.get(parsed.keyId);
      const matches = compare(presented, known?.secretHash ?? decoy);
      if (!known) return { ok: false, reason: 'unknown' };
      if (!matches) return { ok: false, reason: 'mismatch' };
      known.seen = Buffer.from(token.slice(token.length - TAIL_LENGTH), 'latin1');
      return accept(known, now);
    },
  };
}

export const EMPTY_VERIFIER: CredentialVerifier = buildVerifier({ keys: [], clients: [] });
