import { describe, expect, it } from 'vitest';
import { generateApiKey } from '../../plugins/api-keys/key-format.js';
import { credentialFormatsIn, REDACTED, safeMessage, scrubSecrets } from '../../src/secrets.js';

const key = generateApiKey().token;
// Built from parts so this file does not itself look like it holds credentials.
const github = ['ghp', '_', 'a'.repeat(36)].join('');
const aws = ['AKIA', 'IOSFODNN7EXAMPLE'].join('');
const jwt = ['eyJhbGciOiJIUzI1NiJ9', 'eyJzdWIiOiIxMjM0NTY3ODkwIn0', 'dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'].join('.');
const pem = ['-----BEGIN RSA PRIVATE KEY-----', 'MIIEow', '-----END RSA PRIVATE KEY-----'].join('\n');

describe('scrubSecrets', () => {
  it.each([
    [`connect postgres://app:s3cr3t@db:5432/x failed`, 's3cr3t', `postgres://app:${REDACTED}@db`],
    [`refused key ${key} for client 4`, key, `refused key ${REDACTED} for client 4`],
    [`token ${github} rejected`, github, REDACTED],
    [`aws ${aws}`, aws, REDACTED],
    [`Authorization: Bearer abcdefghijklmnop`, 'abcdefghijklmnop', REDACTED],
    [`jwt ${jwt}`, jwt, REDACTED],
    [`key:\n${pem}`, 'MIIEow', REDACTED],
    [`/hook?user=a&password=hunter2&x=1`, 'hunter2', `password=${REDACTED}&x=1`],
    [`{"api_key": "abc123", "n": 1}`, 'abc123', `"api_key": "${REDACTED}"`],
  ])('removes the secret from %j', (text, secret, expected) => {
    const scrubbed = scrubSecrets(text);
    expect(scrubbed).not.toContain(secret);
    expect(scrubbed).toContain(expected);
  });

  it('leaves ordinary text alone', () => {
    for (const text of ['duplicate key value violates unique constraint', 'GET /system/flags/new-checkout 500', 'https://example.com/a?b=c', 'the token bucket is empty']) {
      expect(scrubSecrets(text)).toBe(text);
    }
  });

  it('names the formats it finds', () => {
    expect(credentialFormatsIn(`x ${aws} y ${key}`)).toEqual(['Valhalla API key', 'AWS access key id']);
    expect(credentialFormatsIn('nothing here')).toEqual([]);
  });
});

describe('safeMessage', () => {
  it('keeps the driver\'s words and drops the SQL and parameters drizzle puts in the message', () => {
    const err = Object.assign(new Error('Failed query: update api_keys set secret_hash = $1\nparams: hunter2'), {
      cause: new Error('relation "api_keys" does not exist'),
    });
    expect(safeMessage(err)).toBe('query failed: relation "api_keys" does not exist');
  });

  it('redacts connection URLs and credentials in any message', () => {
    const text = safeMessage(new Error(`connect ECONNREFUSED postgres://app:pw@db:5432/x with ${key}`));
    expect(text).not.toContain('pw@');
    expect(text).not.toContain(key);
  });
});

describe('safeMessage: network errors name no peer', () => {
  it.each([
    ['connect ECONNRESET 127.0.0.1:15432', 'connect ECONNRESET <address>'],
    ['write CONNECTION_CLOSED 127.0.0.1:15432', 'write CONNECTION_CLOSED <address>'],
    ['write CONNECT_TIMEOUT db.internal:5432', 'write CONNECT_TIMEOUT <address>'],
    ['connect ECONNREFUSED [::1]:6379', 'connect ECONNREFUSED <address>'],
    ['redis://user:pw@10.0.0.1:6379 is down', 'redis://<redacted> is down'],
  ])('%s', (message, expected) => {
    expect(safeMessage(new Error(message))).toBe(expected);
  });

  it('leaves version numbers and ordinary text alone', () => {
    expect(safeMessage(new Error('semver 2.0.0: relation "x" does not exist'))).toBe('semver 2.0.0: relation "x" does not exist');
  });
});
