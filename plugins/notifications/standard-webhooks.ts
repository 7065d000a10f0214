import { createHmac } from 'node:crypto';

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com/, spec section "Signature scheme"):
 * HMAC-SHA256 over `${webhook-id}.${webhook-timestamp}.${body}` with the secret's bytes (the
 * base64 after `whsec_`), sent as `v1,<base64>`; several space-separated signatures while a secret
 * is being rotated, so receivers holding either secret verify the message.
 */
export const SECRET_PREFIX = 'whsec_';

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export class SecretFormatError extends Error {
  readonly code = 'NOTIFY_SECRET_FORMAT';
}

/** The key bytes of a `whsec_<base64>` secret (24 to 64 bytes, as the spec recommends). */
export function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : '';
  const key = BASE64.test(encoded) ? Buffer.from(encoded, 'base64') : Buffer.alloc(0);
  if (key.length < 24 || key.length > 64) throw new SecretFormatError('is not a whsec_ secret of 24 to 64 base64-encoded bytes');
  return key;
}

export function signature(key: Buffer, messageId: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${messageId}.${timestampSeconds}.${body}`).digest('base64')}`;
}

/** The `webhook-signature` header: one `v1,` signature per key, space-separated. */
export function signatureHeader(keys: readonly Buffer[], messageId: string, timestampSeconds: number, body: string): string {
  return keys.map((key) => signature(key, messageId, timestampSeconds, body)).join(' ');
}
