import { CREDENTIAL_PATTERNS } from '../../src/secrets.js';

/**
 * The config registry is non-secret by design (SPEC §6 TZ): a key or value that looks like a
 * credential is refused, with an explanation, before it reaches the table, the history, the audit
 * trail or a backup. Three checks, each cheap and explainable:
 *
 * 1. Names (the entry's key and every object key inside a JSON value): words such as `password`,
 *    `secret`, `token`, `private_key`, `api_key`, `credentials`. Names are split into words on
 *    `.`, `_`, `-` and camelCase, so `tokenizer.mode` or `keyboard.layout` pass. A secret word
 *    followed later in the name by a word that describes it rather than holds it
 *    (`password_min_length`, `token_ttl_seconds`, `smtp.password_env`, `api_key_header`) passes:
 *    storing the *name* of the environment variable that holds a secret is the intended pattern.
 * 2. Known credential formats anywhere inside a string: the kernel's list in src/secrets.ts (our
 *    `vhk_` keys, PEM and PGP private keys, JWTs, URLs with a password, bearer tokens, and the
 *    vendor formats of gitleaks' default rule set: AWS, GitHub, GitLab, Slack tokens and webhook
 *    URLs, Stripe, OpenAI, Vault...) plus `password=...` assignments in connection strings.
 * 3. Long random-looking tokens: a run of at least 32 characters from the base64/base64url
 *    alphabet with at least one letter and one digit, Shannon entropy ≥ 4.0 bits per character
 *    and frequent switches between lower case, upper case and digits. Strings are first cut at
 *    spaces and at characters no token alphabet uses (`.`, `:`, `,`, `@`, `?`, `&`...), and paths
 *    at `/`, so sentences, hostnames, URLs, paths and dotted class names pass. Hex-only runs
 *    (UUIDs, SHA digests, commit ids) pass on purpose: they are identifiers far more often than
 *    secrets, and a hex secret is still caught by its name.
 *
 * Findings never echo the suspect text: a response, a log line or a test failure must not become
 * the leak.
 */

export interface SecretFinding {
  /** JSON pointer inside the checked value (`''` is the value itself); `undefined` for the key. */
  pointer?: string;
  /** Stable rule id, e.g. `secret-name`, `aws-access-key-id`, `high-entropy`. */
  rule: string;
  /** Why, as a predicate ("names a secret ('token')", "looks like a JWT"), without the suspect text. */
  message: string;
}

// --- 1. names ------------------------------------------------------------------------------

/** Words that name a secret on their own. */
const SECRET_WORDS = new Set([
  'password', 'passwords', 'passwd', 'pwd', 'passphrase',
  'secret', 'secrets', 'token',
  'credential', 'credentials', 'creds',
  'apikey', 'privatekey', 'accesskey', 'secretkey', 'signingkey', 'encryptionkey',
]);
/** Single words that end in a secret word: `dbpassword`, `authtoken`, `clientsecret`. */
const SECRET_SUFFIXES = ['password', 'passwd', 'secret', 'token'];
/** Two words that name a secret together: `private_key`, `api_key`, ... */
const SECRET_PAIRS = new Set(['private key', 'api key', 'access key', 'secret key', 'signing key', 'encryption key', 'master key']);
/**
 * Words that, after a secret word, say the name is *about* the secret (a policy, a length, a
 * header name, where it is kept) rather than the secret itself.
 */
const QUALIFIERS = new Set([
  'ttl', 'length', 'len', 'min', 'max', 'size', 'count', 'limit', 'bucket',
  'expiry', 'expires', 'expiration', 'lifetime', 'age', 'days', 'hours', 'minutes', 'seconds', 'ms', 'timeout',
  'rotation', 'rotate', 'policy', 'policies', 'rules', 'strength', 'complexity', 'history', 'attempts', 'retries',
  'enabled', 'disabled', 'required', 'allowed',
  'header', 'cookie', 'param', 'field', 'name', 'names', 'label',
  'url', 'uri', 'endpoint', 'issuer', 'audience', 'algorithm', 'alg', 'format', 'prefix', 'pattern', 'type', 'kind', 'scope', 'scopes',
  'env', 'var', 'variable', 'ref', 'reference', 'file', 'path', 'id', 'arn', 'version', 'store', 'provider', 'manager', 'source', 'mount',
]);

/** `smtp.passwordEnv` → `['smtp', 'password', 'env']`. */
export function nameWords(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/** The secret word(s) a name holds without a qualifier after them, or undefined when it passes. */
export function secretNameWord(name: string): string | undefined {
  const words = nameWords(name);
  for (let i = 0; i < words.length; i++) {
    const word = words[i] ?? '';
    const pair = i + 1 < words.length ? `${word} ${words[i + 1]}` : '';
    let matched: string | undefined;
    let end = i;
    if (SECRET_PAIRS.has(pair)) {
      matched = pair.replace(' ', '_');
      end = i + 1;
    } else if (SECRET_WORDS.has(word) || SECRET_SUFFIXES.some((s) => word.length > s.length && word.endsWith(s))) {
      matched = word;
    }
    if (matched && !words.slice(end + 1).some((w) => QUALIFIERS.has(w))) return matched;
  }
  return undefined;
}

// --- 2. known formats ----------------------------------------------------------------------

/** `Valhalla API key` → `valhalla-api-key`: a stable rule id from the shared list's name. */
const ruleId = (name: string): string => name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
const withArticle = (what: string): string => `${/^[aeiou]/i.test(what) ? 'an' : 'a'} ${what}`;

/**
 * The kernel's one list of credential formats (src/secrets.ts, also used to scrub logs and
 * errors), then the `name=value` assignment rule, which only this registry applies to values.
 *
 * The shared `bearer token` pattern also matches prose ("use Bearer authentication"), which is
 * fine for scrubbing but would refuse ordinary descriptions: here the token must hold a digit
 * or a symbol, as generated tokens do.
 */
const BEARER_TOKEN = /\bbearer\s+(?=[0-9A-Za-z._~+/=-]*[0-9._~+/=-])[0-9A-Za-z._~+/=-]{8,}/i;

const FORMATS: ReadonlyArray<{ rule: string; what: string; pattern: RegExp }> = [
  ...CREDENTIAL_PATTERNS.map(({ name, pattern }) => ({
    rule: ruleId(name),
    what: withArticle(name),
    pattern: ruleId(name) === 'bearer-token' ? BEARER_TOKEN : new RegExp(pattern.source, pattern.flags.replace('g', '')),
  })),
  {
    rule: 'credential-assignment',
    what: 'a credential assignment such as password=... (a connection string with its password)',
    pattern: /(?:^|[\s;,&?])(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*[^\s;,&'"]{4,}/i,
  },
];

// --- 3. high entropy -----------------------------------------------------------------------

export const HIGH_ENTROPY_MIN_LENGTH = 32;
export const HIGH_ENTROPY_MIN_BITS = 4.0;
/** Share of adjacent characters switching between lower case, upper case and digits. */
const MIN_CLASS_SWITCH_RATIO = 0.35;

/** Shannon entropy of the string's own character distribution, in bits per character. */
export function shannonEntropy(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

const charClass = (c: string): number => (c >= 'a' && c <= 'z' ? 0 : c >= 'A' && c <= 'Z' ? 1 : c >= '0' && c <= '9' ? 2 : 3);

function classSwitchRatio(s: string): number {
  let switches = 0;
  for (let i = 1; i < s.length; i++) if (charClass(s[i - 1] ?? '') !== charClass(s[i] ?? '')) switches++;
  return switches / (s.length - 1);
}

/** Runs of token-alphabet characters; paths (a leading `/` or two or more `/`) are cut at `/`. */
function candidateRuns(s: string): string[] {
  const out: string[] = [];
  for (const run of s.split(/[^A-Za-z0-9+/=_-]+/)) {
    if (run.length < HIGH_ENTROPY_MIN_LENGTH) continue;
    const slashes = run.split('/').length - 1;
    if (run.startsWith('/') || slashes >= 2) out.push(...run.split('/').filter((p) => p.length >= HIGH_ENTROPY_MIN_LENGTH));
    else out.push(run);
  }
  return out;
}

export function looksRandom(run: string): boolean {
  if (run.length < HIGH_ENTROPY_MIN_LENGTH) return false;
  if (/^[0-9a-fA-F-]+$/.test(run)) return false;
  if (!/[0-9]/.test(run) || !/[A-Za-z]/.test(run)) return false;
  return shannonEntropy(run) >= HIGH_ENTROPY_MIN_BITS && classSwitchRatio(run) >= MIN_CLASS_SWITCH_RATIO;
}

/** The finding for one string value, or undefined when it passes. */
export function secretInString(s: string): Omit<SecretFinding, 'pointer'> | undefined {
  for (const f of FORMATS) {
    if (f.pattern.test(s)) return { rule: f.rule, message: `looks like ${f.what}` };
  }
  if (candidateRuns(s).some(looksRandom)) {
    return {
      rule: 'high-entropy',
      message: `holds a long random-looking token (≥ ${HIGH_ENTROPY_MIN_LENGTH} characters, ≥ ${HIGH_ENTROPY_MIN_BITS} bits of entropy per character), the shape of a generated secret`,
    };
  }
  return undefined;
}

const escapePointer = (segment: string): string => segment.replace(/~/g, '~0').replace(/\//g, '~1');

/** Every finding inside a JSON value: its strings and its object keys, at any depth. */
export function findSecretsInValue(value: unknown, pointer = ''): SecretFinding[] {
  if (typeof value === 'string') {
    const found = secretInString(value);
    return found ? [{ pointer, ...found }] : [];
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => findSecretsInValue(v, `${pointer}/${i}`));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => {
      const at = `${pointer}/${escapePointer(k)}`;
      const word = secretNameWord(k);
      const own: SecretFinding[] = word ? [{ pointer: at, rule: 'secret-name', message: `names a secret ('${word}')` }] : [];
      return [...own, ...findSecretsInValue(v, at)];
    });
  }
  return [];
}

/** Findings for an entry: its key first, then its value. */
export function findSecrets(key: string, value: unknown): SecretFinding[] {
  const word = secretNameWord(key);
  const own: SecretFinding[] = word ? [{ rule: 'secret-name', message: `names a secret ('${word}')` }] : [];
  return [...own, ...findSecretsInValue(value)];
}
