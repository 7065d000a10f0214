import type { IncomingHttpHeaders } from 'node:http';
import { scrubSecrets, SECRET_NAME } from '../../src/secrets.js';

const MAX_HEADERS = 40;
const MAX_NAME = 100;
const MAX_VALUE = 512;
/** Never kept, whatever they hold: they carry the caller's (or a victim's) credentials. */
const DROPPED = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);

/**
 * The request headers worth keeping about an attacker, without any credential: the headers that
 * carry one are dropped, a header whose name says secret is dropped, any known credential format
 * inside a value is redacted; at most 40 headers of at most 512 characters are kept.
 */
export function sanitiseHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  let kept = 0;
  for (const [name, raw] of Object.entries(headers)) {
    if (kept >= MAX_HEADERS) break;
    if (raw === undefined || DROPPED.has(name) || SECRET_NAME.test(name) || name.length > MAX_NAME) continue;
    let value = Array.isArray(raw) ? raw.join(', ') : raw;
    if (value.length > MAX_VALUE) value = `${value.slice(0, MAX_VALUE)}…`;
    out[name] = scrubSecrets(value);
    kept++;
  }
  return out;
}

/** A header value cut to the length telemetry keeps. */
export const capped = (value: string | undefined, max = MAX_VALUE): string | null => (value === undefined ? null : value.length > max ? `${value.slice(0, max)}…` : value);
