import type { IncomingHttpHeaders } from 'node:http';
import { REDACTED, scrubSecrets, SECRET_NAME } from '../../src/secrets.js';

const MAX_HEADERS = 40;
const MAX_NAME = 100;
const MAX_VALUE = 512;
/** Never kept, whatever they hold: they carry the caller's (or a victim's) credentials. */
const DROPPED = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);
/**
 * Header names that carry credentials by convention (`X-Auth`, `X-Auth-Key`, `X-Session-Id`,
 * `X-Signature`, ...): wider than `SECRET_NAME`, which also serves free text, because a header's
 * name is all there is to go on for an unprefixed value.
 */
const CREDENTIAL_HEADER = /auth|token|secret|key|passw|pwd|session|cookie|signature|credential/i;
/**
 * A value in the shape of HTTP credentials (RFC 9110 §11.4: an auth scheme, then a token68 or
 * parameters), whatever header carries it, at the start or after a comma (several credentials).
 */
const AUTH_SCHEME = /(?:^|,)\s*(?:basic|bearer|digest|negotiate|ntlm|kerberos|aws4-hmac-sha256|aws|token|hoba|mutual|vapid|scram-sha-1|scram-sha-256|gssapi|oauth|hawk|dpop|privatetoken|apikey|sharedkey)\s+\S/i;

/**
 * The request headers worth keeping about an attacker, without any credential: the headers that
 * carry one are dropped, a header whose name says auth, key, token, secret, password, session,
 * cookie or signature is dropped, a value with an auth scheme (`Basic …`, `Digest …`) is redacted
 * whole, any known credential format inside a value is redacted; at most 40 headers of at most 512 characters are kept.
 */
export function sanitiseHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  let kept = 0;
  for (const [name, raw] of Object.entries(headers)) {
    if (kept >= MAX_HEADERS) break;
    if (raw === undefined || DROPPED.has(name) || SECRET_NAME.test(name) || CREDENTIAL_HEADER.test(name) || name.length > MAX_NAME) continue;
    let value = Array.isArray(raw) ? raw.join(', ') : raw;
    if (AUTH_SCHEME.test(value)) {
      out[name] = REDACTED;
    } else {
      if (value.length > MAX_VALUE) value = `${value.slice(0, MAX_VALUE)}…`;
      out[name] = scrubSecrets(value);
    }
    kept++;
  }
  return out;
}

/** A header value cut to the length telemetry keeps. */
export const capped = (value: string | undefined, max = MAX_VALUE): string | null => (value === undefined ? null : value.length > max ? `${value.slice(0, max)}…` : value);
