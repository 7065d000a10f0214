/**
 * Known credential formats, found inside free text (error messages, stacks, log messages, URLs)
 * and replaced before the text is stored. One list for every pack: the config registry refuses
 * values that match it, the error and log writers scrub it.
 */
export const CREDENTIAL_PATTERNS: ReadonlyArray<{ name: string; pattern: RegExp }> = [
  { name: 'Valhalla API key', pattern: /\bvhk_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}\b/g },
  { name: 'private key (PEM)', pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g },
  { name: 'PGP private key', pattern: /-----BEGIN PGP PRIVATE KEY BLOCK-----[\s\S]*?(?:-----END PGP PRIVATE KEY BLOCK-----|$)/g },
  { name: 'AWS access key id', pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { name: 'GitHub token', pattern: /\b(?:gh[pousr]_[0-9A-Za-z]{36,255}|github_pat_[0-9A-Za-z_]{22,255})\b/g },
  { name: 'Slack token', pattern: /\bxox[abposr]-[0-9A-Za-z-]{10,}\b/g },
  { name: 'Stripe secret key', pattern: /\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}\b/g },
  { name: 'GitLab token', pattern: /\bglpat-[A-Za-z0-9_-]{20,}/g },
  { name: 'Slack webhook', pattern: /hooks\.slack\.com\/services\/T[A-Za-z0-9]+\/B[A-Za-z0-9]+\/[A-Za-z0-9]+/g },
  { name: 'Google API key', pattern: /\bAIza[0-9A-Za-z_-]{35}/g },
  { name: 'npm token', pattern: /\bnpm_[A-Za-z0-9]{36}\b/g },
  { name: 'SendGrid key', pattern: /\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}/g },
  { name: 'JSON Web Token', pattern: /\beyJ[0-9A-Za-z_-]{5,}\.eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*/g },
  { name: 'password in a URL', pattern: /\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:[^\s/@]+@/gi },
  { name: 'bearer token', pattern: /\bbearer\s+[0-9A-Za-z._~+/=-]{8,}/gi },
];

/** Key names whose values are secrets (matched anywhere in the name, any case). */
export const SECRET_NAME = /passw(?:or)?d|secret|token|authori[sz]ation|api[-_]?key|private[-_]?key|cookie|credential/i;

/** `password=…`, `"token": "…"`, `api_key: …`: the value after a secret-looking name. */
const NAMED_SECRET = new RegExp(`\\b([\\w-]*(?:${SECRET_NAME.source})[\\w-]*)(["']?\\s*[=:]\\s*["']?)([^\\s"'&,;}]+)`, 'gi');

export const REDACTED = '[redacted]';

/** The names of the credential formats `text` contains (empty when none). */
export function credentialFormatsIn(text: string): string[] {
  return CREDENTIAL_PATTERNS.filter(({ pattern }) => new RegExp(pattern.source, pattern.flags.replace('g', '')).test(text)).map((p) => p.name);
}

/** `text` with every known credential, URL password and `name=value` secret replaced. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const { name, pattern } of CREDENTIAL_PATTERNS) {
    out = out.replace(pattern, (match) => {
      if (name === 'password in a URL') return match.replace(/:[^:@]+@$/, `:${REDACTED}@`);
      if (name === 'bearer token') return `${match.slice(0, 6)} ${REDACTED}`;
      return REDACTED;
    });
  }
  return out.replace(NAMED_SECRET, (_m, key: string, sep: string) => `${key}${sep}${REDACTED}`);
}

/**
 * An error's message fit for logs and stored rows: drizzle's "Failed query: <sql> params: ..."
 * becomes the driver's own message (no SQL, no parameters), connection URLs and known
 * credentials are redacted, and the length is bounded.
 */
export function safeMessage(error: unknown): string {
  const message = String((error as Error)?.message ?? error);
  const cause = (error as { cause?: unknown })?.cause;
  if (message.startsWith('Failed query:')) return cause ? `query failed: ${safeMessage(cause)}` : 'query failed';
  return scrubSecrets(message.replace(/postgres(ql)?:\/\/[^\s]+/gi, 'postgres://<redacted>')).slice(0, 1000);
}
