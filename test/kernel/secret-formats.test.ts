import { describe, expect, it } from 'vitest';
import { secretInString } from '../../plugins/config-registry/secret-detector.js';
import { CREDENTIAL_PATTERNS, credentialFormatsIn, REDACTED, scrubSecrets } from '../../src/secrets.js';

/**
 * One made-up sample per gitleaks rule (config/gitleaks.toml) that src/secrets.ts claims to
 * cover. Every sample is assembled at run time from a prefix and generated characters, so this
 * file holds no string that looks like a credential to a secret scanner (or to GitHub's push
 * protection); none of them is a real credential.
 */
let seed = 0x7e57;
function nextInt(n: number): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) % n;
}
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = LOWER.toUpperCase();
const DIGITS = '0123456789';
const HEX = '0123456789abcdef';
const ALNUM = UPPER + LOWER + DIGITS;
const UPPER_ALNUM = UPPER + DIGITS;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const BASE64 = ALNUM + '+/';
/** `n` characters drawn from `alphabet` (every class appears in long runs). */
const gen = (alphabet: string, n: number) => Array.from({ length: n }, () => alphabet[nextInt(alphabet.length)]).join('');
const j = (...parts: string[]) => parts.join('');
const uuid = () => [gen(HEX, 8), gen(HEX, 4), gen(HEX, 4), gen(HEX, 4), gen(HEX, 12)].join('-');

const SAMPLES: Record<string, string> = {
  'private-key': j('-----BEGIN ', 'EC PRIVATE KEY-----\n', gen(BASE64, 64), '\n-----END EC PRIVATE KEY-----'),
  'aws-access-token': j('AB', 'IA', gen(BASE32, 16)),
  'aws-amazon-bedrock-api-key-long-lived': j('AB', 'SK', gen(BASE64, 120)),
  'aws-amazon-bedrock-api-key-short-lived': j('bedrock-api-key-', 'YmVkcm9jay5hbWF6b25hd3MuY29t', gen(ALNUM, 40)),
  'github-pat': j('gh', 'p_', gen(ALNUM, 36)),
  'github-oauth': j('gh', 'o_', gen(ALNUM, 36)),
  'github-app-token': j('gh', 's_', gen(ALNUM, 36)),
  'github-refresh-token': j('gh', 'r_', gen(ALNUM, 36)),
  'github-fine-grained-pat': j('github', '_pat_', gen(ALNUM, 82)),
  'gitlab-pat': j('gl', 'pat-', gen(ALNUM, 20)),
  'gitlab-pat-routable': j('gl', 'pat-', gen(ALNUM, 27), '.01', gen(LOWER + DIGITS, 7)),
  'gitlab-cicd-job-token': j('gl', 'cbt-', gen(ALNUM, 4), '_', gen(ALNUM, 20)),
  'gitlab-deploy-token': j('gl', 'dt-', gen(ALNUM, 20)),
  'gitlab-feature-flag-client-token': j('gl', 'ffct-', gen(ALNUM, 20)),
  'gitlab-feed-token': j('gl', 'ft-', gen(ALNUM, 20)),
  'gitlab-incoming-mail-token': j('gl', 'imt-', gen(ALNUM, 25)),
  'gitlab-kubernetes-agent-token': j('gl', 'agent-', gen(ALNUM, 50)),
  'gitlab-oauth-app-secret': j('gl', 'oas-', gen(ALNUM, 64)),
  'gitlab-ptt': j('gl', 'ptt-', gen(HEX, 40)),
  'gitlab-rrt': j('GR13', '48941', gen(ALNUM, 20)),
  'gitlab-runner-authentication-token': j('gl', 'rt-', gen(ALNUM, 20)),
  'gitlab-runner-authentication-token-routable': j('gl', 'rt-t1_', gen(ALNUM, 27), '.01', gen(LOWER + DIGITS, 7)),
  'gitlab-scim-token': j('gl', 'soat-', gen(ALNUM, 20)),
  'gitlab-session-cookie': j('_gitlab', '_session=', gen(LOWER + DIGITS, 32)),
  'slack-bot-token': j('xo', 'xb-', gen(DIGITS, 12), '-', gen(DIGITS, 13), '-', gen(ALNUM, 24)),
  'slack-user-token': j('xo', 'xp-', gen(DIGITS, 12), '-', gen(DIGITS, 12), '-', gen(DIGITS, 13), '-', gen(HEX, 32)),
  'slack-app-token': j('xa', 'pp-1-', gen(UPPER_ALNUM, 11), '-', gen(DIGITS, 13), '-', gen(HEX, 64)),
  'slack-config-access-token': j('xo', 'xe.', 'xo', 'xp-1-', gen(UPPER_ALNUM, 164)),
  'slack-config-refresh-token': j('xo', 'xe-1-', gen(UPPER_ALNUM, 146)),
  'slack-legacy-bot-token': j('xo', 'xb-', gen(DIGITS, 10), '-', gen(ALNUM, 24)),
  'slack-legacy-token': j('xo', 'xs-', gen(DIGITS, 10), '-', gen(DIGITS, 10), '-', gen(DIGITS, 12), '-', gen(HEX, 64)),
  'slack-legacy-workspace-token': j('xo', 'xa-2-', gen(ALNUM, 40)),
  'slack-webhook-url': j('https://hooks', '.slack.com/services/', 'T', gen(UPPER_ALNUM, 10), '/B', gen(UPPER_ALNUM, 10), '/', gen(ALNUM, 24)),
  'microsoft-teams-webhook': j('https://acme', '.webhook.office.com/webhookb2/', uuid(), '@', uuid(), '/IncomingWebhook/', gen(HEX, 32), '/', uuid()),
  'stripe-access-token': j('sk', '_prod_', gen(ALNUM, 24)),
  'gcp-api-key': j('AI', 'za', gen(ALNUM, 35)),
  'npm-access-token': j('np', 'm_', gen(ALNUM, 36)),
  'sendgrid-api-token': j('SG', '.', gen(ALNUM, 22), '.', gen(ALNUM, 43)),
  jwt: j('ey', 'J', gen(ALNUM, 20), '.', 'ey', 'J', gen(ALNUM, 30), '.', gen(ALNUM, 43)),
  'jwt-base64': Buffer.from(j('ey', 'JhbGciOiJIUzI1NiJ9.', 'ey', 'J', gen(ALNUM, 30), '.', gen(ALNUM, 43))).toString('base64'),
  '1password-secret-key': j('A3', '-', gen(UPPER_ALNUM, 6), '-', gen(UPPER_ALNUM, 11), '-', gen(UPPER_ALNUM, 5), '-', gen(UPPER_ALNUM, 5), '-', gen(UPPER_ALNUM, 5)),
  '1password-service-account-token': j('op', 's_ey', 'J', gen(ALNUM, 260)),
  'adobe-client-secret': j('p8', 'e-', gen(ALNUM, 32)),
  'age-secret-key': j('AGE-SECRET', '-KEY-1', gen('QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L', 58)),
  'airtable-personnal-access-token': j('pa', 't', gen(ALNUM, 14), '.', gen(HEX, 64)),
  'alibaba-access-key-id': j('LT', 'AI', gen(ALNUM, 20)),
  'anthropic-api-key': j('sk-', 'ant-api03-', gen(ALNUM, 93), 'AA'),
  'anthropic-admin-api-key': j('sk-', 'ant-admin01-', gen(ALNUM, 93), 'AA'),
  'artifactory-api-key': j('AK', 'Cp', gen(ALNUM, 69)),
  'artifactory-reference-token': j('cmV', 'md', gen(ALNUM, 59)),
  'authress-service-client-access-key': j('sc', '_', gen(ALNUM, 12), '.', gen(ALNUM, 5), '.acc_', gen(LOWER + DIGITS, 20), '.', gen(ALNUM, 40)),
  'azure-ad-client-secret': j(gen(ALNUM, 3), '8', 'Q~', gen(ALNUM, 34)),
  'clickhouse-cloud-api-secret-key': j('4b', '1d', gen(ALNUM, 38)),
  'clojars-api-token': j('CLO', 'JARS_', gen(LOWER + DIGITS, 60)),
  'cloudflare-origin-ca-key': j('v1', '.0-', gen(HEX, 24), '-', gen(HEX, 146)),
  'databricks-api-token': j('da', 'pi', gen(HEX, 32)),
  'digitalocean-access-token': j('do', 'o_v1_', gen(HEX, 64)),
  'digitalocean-pat': j('do', 'p_v1_', gen(HEX, 64)),
  'digitalocean-refresh-token': j('do', 'r_v1_', gen(HEX, 64)),
  'doppler-api-token': j('dp', '.pt.', gen(ALNUM, 43)),
  'duffel-api-token': j('duf', 'fel_live_', gen(ALNUM, 43)),
  'dynatrace-api-token': j('dt', '0c01.', gen(UPPER_ALNUM, 24), '.', gen(UPPER_ALNUM, 64)),
  'easypost-api-token': j('EZ', 'AK', gen(ALNUM, 54)),
  'easypost-test-api-token': j('EZ', 'TK', gen(ALNUM, 54)),
  'facebook-page-access-token': j('EA', 'AC', gen(ALNUM, 120)),
  'flutterwave-secret-key': j('FLW', 'SECK_TEST-', gen('abcdefgh0123456789', 32), '-X'),
  'flutterwave-public-key': j('FLW', 'PUBK_TEST-', gen('abcdefgh0123456789', 32), '-X'),
  'flutterwave-encryption-key': j('FLW', 'SECK_TEST-', gen('abcdefgh0123456789', 12)),
  'flyio-access-token': j('fm', '2_', gen(BASE64, 120)),
  'frameio-api-token': j('fio', '-u-', gen(ALNUM, 64)),
  'grafana-api-key': j('eyJr', 'Ijoi', gen(ALNUM, 80)),
  'grafana-cloud-api-token': j('gl', 'c_', gen(ALNUM, 40)),
  'grafana-service-account-token': j('gl', 'sa_', gen(ALNUM, 32), '_', gen(HEX, 8)),
  'harness-api-key': j('pa', 't.', gen(ALNUM, 22), '.', gen(ALNUM, 24), '.', gen(ALNUM, 20)),
  'hashicorp-tf-api-token': j(gen(ALNUM, 14), '.atlas', 'v1.', gen(ALNUM, 64)),
  'vault-service-token': j('hv', 's.', gen(ALNUM, 100)),
  'vault-batch-token': j('hv', 'b.', gen(ALNUM, 150)),
  'heroku-api-key-v2': j('HR', 'KU-AA', gen(ALNUM, 58)),
  'huggingface-access-token': j('h', 'f_', gen(LOWER + UPPER, 34)),
  'huggingface-organization-api-token': j('api', '_org_', gen(LOWER + UPPER, 34)),
  'infracost-api-token': j('ic', 'o-', gen(ALNUM, 32)),
  'intra42-client-secret': j('s-s4', 't2ud-', gen(HEX, 64)),
  'linear-api-key': j('lin', '_api_', gen(ALNUM, 40)),
  'maxmind-license-key': j(gen(ALNUM, 6), '_', gen(ALNUM, 29), '_m', 'mk'),
  'notion-api-token': j('nt', 'n_', gen(DIGITS, 11), gen(ALNUM, 35)),
  'octopus-deploy-api-key': j('AP', 'I-', gen(UPPER_ALNUM, 26)),
  'openai-api-key': j('sk-', 'proj-', gen(ALNUM, 74), 'T3Blbk', 'FJ', gen(ALNUM, 74)),
  'openshift-user-token': j('sha256', '~', gen(ALNUM, 43)),
  'perplexity-api-key': j('pp', 'lx-', gen(ALNUM, 48)),
  'planetscale-api-token': j('pscale', '_tkn_', gen(ALNUM, 43)),
  'planetscale-oauth-token': j('pscale', '_oauth_', gen(ALNUM, 43)),
  'planetscale-password': j('pscale', '_pw_', gen(ALNUM, 43)),
  'postman-api-token': j('PM', 'AK-', gen(HEX, 24), '-', gen(HEX, 34)),
  'prefect-api-token': j('pn', 'u_', gen(ALNUM, 36)),
  'pulumi-api-token': j('pu', 'l-', gen(HEX, 40)),
  'pypi-upload-token': j('pypi-', 'AgEIcHlwaS5vcmc', gen(ALNUM, 70)),
  'readme-api-token': j('rd', 'me_', gen(LOWER + DIGITS, 70)),
  'rubygems-api-token': j('ruby', 'gems_', gen(HEX, 48)),
  'scalingo-api-token': j('tk', '-us-', gen(ALNUM, 48)),
  'sendinblue-api-token': j('xkey', 'sib-', gen(HEX, 64), '-', gen(ALNUM, 16)),
  'sentry-user-token': j('sntr', 'yu_', gen(HEX, 64)),
  'sentry-org-token': j('sntr', 'ys_ey', 'JpYXQiO', gen(ALNUM, 40), 'LCJyZWdpb25fdXJs', gen(ALNUM, 40), '_', gen(ALNUM, 43)),
  'settlemint-application-access-token': j('sm', '_aat_', gen(ALNUM, 16)),
  'settlemint-personal-access-token': j('sm', '_pat_', gen(ALNUM, 16)),
  'settlemint-service-access-token': j('sm', '_sat_', gen(ALNUM, 16)),
  'shippo-api-token': j('ship', 'po_live_', gen(HEX, 40)),
  'shopify-access-token': j('shp', 'at_', gen(HEX, 32)),
  'shopify-custom-access-token': j('shp', 'ca_', gen(HEX, 32)),
  'shopify-private-app-access-token': j('shp', 'pa_', gen(HEX, 32)),
  'shopify-shared-secret': j('shp', 'ss_', gen(HEX, 32)),
  'sourcegraph-access-token': j('sg', 'p_', gen(HEX, 16), '_', gen(HEX, 40)),
  'square-access-token': j('sq0', 'atp-', gen(ALNUM, 22)),
  'twilio-api-key': j('S', 'K', gen(HEX, 32)),
  'atlassian-api-token': j('ATA', 'TT3', gen(ALNUM, 186)),
  'defined-networking-api-token': j('dn', 'key-', gen(ALNUM, 26), '-', gen(ALNUM, 52)),
  'dropbox-short-lived-api-token': j('s', 'l.', gen(ALNUM, 135)),
  'dropbox-long-lived-api-token': j(gen(ALNUM, 11), 'AAAAA', 'AAAAA', gen(ALNUM, 43)),
  'mailchimp-api-key': j(gen(HEX, 32), '-u', 's21'),
  'mapbox-api-token': j('p', 'k.', gen(ALNUM, 60), '.', gen(ALNUM, 22)),
  'new-relic-user-api-key': j('NR', 'AK-', gen(UPPER_ALNUM, 27)),
  'new-relic-insert-key': j('NR', 'II-', gen(ALNUM, 32)),
  'new-relic-browser-api-token': j('NR', 'JS-', gen(HEX, 19)),
  'plaid-api-token': j('access-', 'production-', uuid()),
  'sonar-api-token': j('sq', 'u_', gen(HEX, 40)),
  'telegram-bot-api-token': j(gen(DIGITS, 10), ':', 'A', gen(ALNUM, 34)),
  'typeform-api-token': j('tf', 'p_', gen(ALNUM, 59)),
  'yandex-api-key': j('AQ', 'VN', gen(ALNUM, 36)),
  'sidekiq-sensitive-url': j('https://', gen(HEX, 8), ':', gen(HEX, 8), '@gems', '.contribsys.com/'),
};

/** Where one gitleaks rule is covered by two of our patterns, the second pattern's own sample. */
const SAMPLE_FOR_PATTERN: Record<string, string> = {
  'PGP private key': j('-----BEGIN ', 'PGP PRIVATE KEY BLOCK-----\n\n', gen(BASE64, 64), '\n-----END PGP PRIVATE KEY BLOCK-----'),
};

/** What the issue reported missing: Slack workflow and trigger webhook URLs. */
const SLACK_WORKFLOW = j('https://hooks', '.slack.com/workflows/', 'T', gen(UPPER_ALNUM, 10), '/A', gen(UPPER_ALNUM, 10), '/', gen(DIGITS, 18), '/', gen(ALNUM, 24));
const SLACK_TRIGGER = j('https://hooks', '.slack.com/triggers/', 'T', gen(UPPER_ALNUM, 10), '/', gen(DIGITS, 13), '/', gen(HEX, 32));

const covered = CREDENTIAL_PATTERNS.flatMap((p) => (p.gitleaks ?? []).map((id) => [id, p.name] as const));

describe('credential formats held against gitleaks default rules', () => {
  it('has exactly one sample for every gitleaks rule the list claims', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual([...new Set(covered.map(([id]) => id))].sort());
  });

  it.each(covered)('%s: recognised as %s, scrubbed, refused by the config registry', (id, name) => {
    const sample = SAMPLE_FOR_PATTERN[name] ?? SAMPLES[id]!;
    expect(credentialFormatsIn(`value: ${sample} end`)).toContain(name);
    const scrubbed = scrubSecrets(`before ${sample} after`);
    expect(scrubbed).toContain(REDACTED);
    expect(scrubbed).toMatch(/^before /);
    expect(secretInString(sample)).toBeDefined();
    expect(secretInString(sample)?.rule).not.toBe('high-entropy');
  });

  it.each([
    ['Slack workflow webhook', SLACK_WORKFLOW],
    ['Slack trigger URL', SLACK_TRIGGER],
  ])('recognises a %s', (_label, url) => {
    expect(credentialFormatsIn(url)).toEqual(['Slack webhook']);
    expect(secretInString(url)?.rule).toBe('slack-webhook');
    expect(scrubSecrets(`posting to ${url}`)).not.toContain(url.slice(-24));
  });

  it.each([
    'https://hooks.slack.com/services/',
    'see https://api.slack.com/messaging/webhooks for the setup',
    'API-GATEWAY-TIMEOUT',
    'sk_live_',
    'the shopify_store_domain setting',
    'sha256~short',
    'pat.example.com',
  ])('leaves %j alone', (text) => {
    expect(credentialFormatsIn(text)).toEqual([]);
  });
});

