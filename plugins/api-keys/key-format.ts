import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * API key format: `vhk_<keyId>_<secret><checksum>`, modelled on GitHub's token format so secret
 * scanners can find leaked keys without calling us:
 * - `vhk_`: fixed prefix (Valhalla key);
 * - keyId: 12 base62 characters, public, stored in clear, used to look the key up;
 * - secret: 32 base62 characters (~190 bits), stored only as a SHA-256 hash;
 * - checksum: CRC32 of everything before it, 6 base62 characters, so a typo or a made-up key
 *   is refused before any lookup.
 * Scanner pattern: `\bvhk_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}\b` (API_KEY_PATTERN).
 */
export const API_KEY_PREFIX = 'vhk_';
export const API_KEY_PATTERN = /^vhk_([0-9A-Za-z]{12})_([0-9A-Za-z]{32})([0-9A-Za-z]{6})$/;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 × 62: rejecting higher bytes keeps every character equally likely.
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

function checksum(body: string): string {
  let n = crc32(body);
  let out = '';
  for (let i = 0; i < 6; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

export interface ParsedApiKey {
  keyId: string;
  secret: string;
}

/** The full token for a key id and secret, checksum included. */
export function formatApiKey(keyId: string, secret: string): string {
  const body = `${API_KEY_PREFIX}${keyId}_${secret}`;
  return body + checksum(body);
}

/** A new key: the full token (shown once), its public id and its secret part. */
export function generateApiKey(): ParsedApiKey & { token: string } {
  const keyId = randomBase62(12);
  const secret = randomBase62(32);
  return { token: formatApiKey(keyId, secret), keyId, secret };
}

/** Splits a presented token; null when it is not in the format or its checksum is wrong. */
export function parseApiKey(token: string): ParsedApiKey | null {
  const match = API_KEY_PATTERN.exec(token);
  if (!match) return null;
  const [, keyId = '', secret = '', sum = ''] = match;
  if (checksum(`${API_KEY_PREFIX}${keyId}_${secret}`) !== sum) return null;
  return { keyId, secret };
}
