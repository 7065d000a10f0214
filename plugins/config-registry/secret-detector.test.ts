import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateApiKey } from '../api-keys/key-format.js';
import { findSecrets, findSecretsInValue, looksRandom, secretInString, secretNameWord, shannonEntropy } from './secret-detector.js';

// Test fixtures are assembled from parts so that this file does not itself look like it holds
// credentials to a secret scanner.
const join = (...parts: string[]) => parts.join('');
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
// A seeded generator (mulberry32): the high-entropy cases are random-looking but the same on every run.
let seed = 0x5eed;
function nextByte(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) % 256;
}
const seededBytes = (n: number) => Buffer.from(Array.from({ length: n }, nextByte));
const randomBase62 = (n: number) => [...seededBytes(n * 2)].filter((b) => b < 248).slice(0, n).map((b) => BASE62[b % 62]).join('');

describe('secret names', () => {
  it.each([
    ['db.password', 'password'],
    ['smtp.passwd', 'passwd'],
    ['vault.passphrase', 'passphrase'],
    ['oauth.client_secret', 'secret'],
    ['github.token', 'token'],
    ['github.authtoken', 'authtoken'],
    ['tls.private_key', 'private_key'],
    ['stripe.api_key', 'api_key'],
    ['aws.access_key', 'access_key'],
    ['aws.secret_key', 'secret_key'],
    ['jwt.signing_key', 'signing_key'],
    ['ldap.credentials', 'credentials'],
    ['ldap.credential', 'credential'],
    ['payments.apikey', 'apikey'],
    ['db.admin_password.value', 'password'],
    ['clientSecret', 'secret'],
    ['dbPassword', 'password'],
    ['privateKey', 'private_key'],
    // A qualifier must come after the secret word: `max_password` still names a password.
    ['auth.max_password', 'password'],
  ])('refuses %s (%s)', (name, word) => {
    expect(secretNameWord(name)).toBe(word);
  });

  it.each([
    'exports.max_rows',
    'tokenizer.mode',
    'keyboard.layout',
    'cache.key_prefix',
    'auth.password_min_length',
    'auth.min_password_length',
    'auth.token_ttl_seconds',
    'auth.token.ttl',
    'smtp.password_env',
    'smtp.passwordEnv',
    'api.api_key_header',
    'k8s.secret_name',
    'tls.private_key_path',
    'llm.max_tokens',
    'rate_limits.token_bucket_size',
    'oauth.token_url',
    'secretary.desk',
    'flags.passwords_required',
  ])('lets %s pass', (name) => {
    expect(secretNameWord(name)).toBeUndefined();
  });
});

describe('credential formats in values', () => {
  const cases: Array<[string, string]> = [
    [join('AKIA', 'IOSFODNN7EXAMPLE'), 'aws-access-key-id'],
    [join('key id ', 'ASIA', 'Y34FZKBOKMUTVV7A', ' in a sentence'), 'aws-access-key-id'],
    [join('ghp_', randomBase62(36)), 'github-token'],
    [join('gho_', randomBase62(36)), 'github-token'],
    [join('github_pat_', randomBase62(22), '_', randomBase62(59)), 'github-token'],
    [join('glpat-', randomBase62(20)), 'gitlab-token'],
    [join('xoxb-', '123456789012-1234567890123-', randomBase62(24)), 'slack-token'],
    [join('https://hooks.slack.com/services/', 'T00000000/B00000000/', randomBase62(24)), 'slack-webhook'],
    [join('sk_', 'live_', randomBase62(24)), 'stripe-secret-key'],
    [join('rk_', 'test_', randomBase62(24)), 'stripe-secret-key'],
    [join('AIza', randomBase62(35)), 'google-api-key'],
    [join('npm_', randomBase62(36)), 'npm-token'],
    [join('SG.', randomBase62(22), '.', randomBase62(43)), 'sendgrid-key'],
    [join('eyJ', 'hbGciOiJIUzI1NiJ9', '.', 'eyJ', 'zdWIiOiIxMjM0NTY3ODkwIn0', '.', 'dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'), 'json-web-token'],
    [join('-----BEGIN ', 'RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----'), 'private-key-pem'],
    [join('-----BEGIN ', 'PRIVATE KEY-----'), 'private-key-pem'],
    [join('-----BEGIN ', 'OPENSSH PRIVATE KEY-----'), 'private-key-pem'],
    [join('-----BEGIN ', 'PGP PRIVATE KEY BLOCK-----'), 'pgp-private-key'],
    [generateApiKey().token, 'valhalla-api-key'],
    [join('postgres://app:', 'hunter2', '@db.internal:5432/app'), 'password-in-a-url'],
    [join('redis://:', 'hunter2', '@cache:6379/0'), 'password-in-a-url'],
    [join('Server=db;User Id=sa;', 'Password=', 'hunter2;'), 'credential-assignment'],
    [join('https://api.example.com/v1?', 'api_key=', 'abcd1234'), 'credential-assignment'],
    [join('Bearer ', randomBase62(40)), 'bearer-token'],
    [join('Authorization: bearer ', 'abc.def-123'), 'bearer-token'],
    [randomBase62(32), 'high-entropy'],
    [seededBytes(32).toString('base64url'), 'high-entropy'],
    [join('https://example.com/callback/', randomBase62(40)), 'high-entropy'],
  ];
  it.each(cases)('refuses %s as %s', (value, rule) => {
    expect(secretInString(value)?.rule).toBe(rule);
  });

  it.each([
    'https://example.com/api/v1/some/long/path?query=abc',
    'https://example.com/.well-known/openid-configuration',
    'postgres://app@db.internal:5432/valhalla?sslmode=require',
    'my-service.internal.eu-west-1.compute.amazonaws.com',
    's3://valhalla-exports-production-eu-west-1/daily/2024/',
    'arn:aws:s3:::valhalla-exports-production-eu-west-1/daily',
    '/var/lib/valhalla/exports/daily/report.csv',
    '/data/2024/exports/region-eu-west-1/archive/nightly-full-backup-v2',
    'registry.example.com/valhalla/kernel:1.4.2-alpine3.19-amd64',
    'The quick brown fox jumps over the lazy dog while the exporter runs nightly at 02:00 UTC.',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
    'SomeVeryLongJavaClassNameForFactoryBean',
    'com.example.Log4jConfigurationFactoryProvider2',
    'org.apache.kafka.common.serialization.StringSerializer',
    'ENABLE_NEW_EXPORTER_FOR_REGION_EU_WEST_1_AND_US_EAST_2',
    'Europe/Berlin,America/New_York,Asia/Tokyo',
    'noreply+notifications@example-company.com',
    'application/vnd.valhalla.export+json;version=2',
    // Identifiers and digests are hex: they pass (a hex secret is caught by its name instead).
    randomUUID(),
    `urn:uuid:${randomUUID()}`,
    randomBytes(32).toString('hex'),
    `sha256:${randomBytes(32).toString('hex')}`,
    '0123456789abcdef0123456789abcdef01234567',
    // Referring to a secret by name is the intended pattern.
    'SMTP_PASSWORD',
    'ghp_short',
    'sk_live_',
    'password must be at least 12 characters',
    'Use Bearer authentication for the partner API',
    '',
  ])('lets %s pass', (value) => {
    expect(secretInString(value)).toBeUndefined();
  });

  it('measures entropy in bits per character', () => {
    expect(shannonEntropy('aaaa')).toBe(0);
    expect(shannonEntropy('abcd')).toBe(2);
    expect(shannonEntropy('0123456789ABCDEFGHIJKLMNOPQRSTUV')).toBe(5);
  });

  it('flags nearly every random 32-character base62 token and no UUID', () => {
    let tokens = 0;
    let uuids = 0;
    for (let i = 0; i < 500; i++) {
      if (looksRandom(randomBase62(32))) tokens++;
      if (looksRandom(randomUUID())) uuids++;
    }
    expect(tokens).toBeGreaterThan(480);
    expect(uuids).toBe(0);
  });
});

describe('findSecrets over an entry', () => {
  it('reports the key, then nested field names and strings with JSON pointers, never the text', () => {
    const token = join('ghp_', randomBase62(36));
    const findings = findSecrets('integrations.github', {
      org: 'acme',
      token,
      hooks: [{ url: 'https://example.com/hook' }, { url: join('https://ci:', 'hunter2', '@ci.example.com/') }],
      'a/b~c': { passwordEnv: 'CI_PASSWORD' },
    });
    expect(findings).toEqual([
      { pointer: '/token', rule: 'secret-name', message: "names a secret ('token')" },
      { pointer: '/token', rule: 'github-token', message: 'looks like a GitHub token' },
      { pointer: '/hooks/1/url', rule: 'password-in-a-url', message: 'looks like a password in a URL' },
    ]);
    expect(JSON.stringify(findings)).not.toContain(token);
    expect(JSON.stringify(findings)).not.toContain('hunter2');

    expect(findSecrets('db.password', 'x')[0]).toEqual({ rule: 'secret-name', message: "names a secret ('password')" });
    expect(findSecrets('exports.max_rows', 5000)).toEqual([]);
    expect(findSecretsInValue({ 'a/b~c': { clientSecret: 'x' } })).toEqual([expect.objectContaining({ pointer: '/a~1b~0c/clientSecret' })]);
  });
});
