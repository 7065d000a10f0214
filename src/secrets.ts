/**
 * Known credential formats, found inside free text (error messages, stacks, log messages, URLs)
 * and replaced before the text is stored. One list for every pack: the config registry refuses
 * values that match it, the error and log writers scrub it.
 *
 * Held against gitleaks' default rule set (config/gitleaks.toml, the list most teams run in CI):
 * every rule there that recognises a credential by its own shape (a vendor prefix or a fixed
 * structure) has a pattern here, and `gitleaks` names the rules each pattern covers (the tests
 * hold one made-up sample per rule). Rules that need a nearby word to guess at an unprefixed
 * value (`twitter ... = <45 chars>`, `generic-api-key`) are left to the config registry's name
 * and entropy checks instead: as free-text scrubbers they would redact ordinary identifiers.
 * The patterns are our own, written from the vendors' documented token formats.
 */
export interface CredentialPattern {
  name: string;
  pattern: RegExp;
  /** The gitleaks rule ids this pattern covers. */
  gitleaks?: readonly string[];
}

export const CREDENTIAL_PATTERNS: ReadonlyArray<CredentialPattern> = [
  { name: 'Valhalla API key', pattern: /\bvhk_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}\b/g },
  { name: 'private key (PEM)', pattern: /-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY-----[\s\S]*?(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY-----|$)/g, gitleaks: ['private-key'] },
  { name: 'PGP private key', pattern: /-----BEGIN PGP PRIVATE KEY BLOCK-----[\s\S]*?(?:-----END PGP PRIVATE KEY BLOCK-----|$)/g, gitleaks: ['private-key'] },
  { name: 'AWS access key id', pattern: /\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b/g, gitleaks: ['aws-access-token'] },
  {
    name: 'Amazon Bedrock API key',
    pattern: /\bABSK[A-Za-z0-9+/]{109,269}={0,2}|\bbedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=&%-]*/g,
    gitleaks: ['aws-amazon-bedrock-api-key-long-lived', 'aws-amazon-bedrock-api-key-short-lived'],
  },
  {
    name: 'GitHub token',
    pattern: /\b(?:gh[pousr]_[0-9A-Za-z]{36,255}|github_pat_[0-9A-Za-z_]{22,255})\b/g,
    gitleaks: ['github-pat', 'github-oauth', 'github-app-token', 'github-refresh-token', 'github-fine-grained-pat'],
  },
  {
    name: 'GitLab token',
    pattern:
      /\b(?:glpat-[\w-]{20,}|glcbt-[0-9A-Za-z]{1,5}_[\w-]{20,}|gl(?:dt|ffct|ft|rt|soat)-[\w-]{20,}|glimt-[\w-]{25,}|glagent-[\w-]{50,}|gloas-[\w-]{64,}|glptt-[0-9a-f]{40}|GR1348941[\w-]{20,})|_gitlab_session=[0-9a-z]{32}/g,
    gitleaks: [
      'gitlab-pat', 'gitlab-pat-routable', 'gitlab-cicd-job-token', 'gitlab-deploy-token', 'gitlab-feature-flag-client-token', 'gitlab-feed-token',
      'gitlab-incoming-mail-token', 'gitlab-kubernetes-agent-token', 'gitlab-oauth-app-secret', 'gitlab-ptt', 'gitlab-rrt',
      'gitlab-runner-authentication-token', 'gitlab-runner-authentication-token-routable', 'gitlab-scim-token', 'gitlab-session-cookie',
    ],
  },
  {
    name: 'Slack token',
    pattern: /\b(?:xox[abposre]-[0-9A-Za-z-]{10,}|xoxe\.xox[bp]-\d-[0-9A-Za-z]{100,}|xapp-\d-[0-9A-Za-z]+-\d+-[0-9A-Za-z]+)\b/g,
    gitleaks: [
      'slack-bot-token', 'slack-user-token', 'slack-app-token', 'slack-config-access-token', 'slack-config-refresh-token',
      'slack-legacy-bot-token', 'slack-legacy-token', 'slack-legacy-workspace-token',
    ],
  },
  // Incoming webhooks (`/services/T…/B…/<secret>`), workflow webhooks (`/workflows/T…/A…/<id>/<secret>`)
  // and trigger URLs (`/triggers/T…/<id>/<secret>`): the URL itself is the credential.
  { name: 'Slack webhook', pattern: /hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9]+\/[A-Za-z0-9+/_-]{10,}/g, gitleaks: ['slack-webhook-url'] },
  {
    name: 'Microsoft Teams webhook',
    pattern: /\b[a-z0-9-]+\.webhook\.office\.com\/webhookb2\/[0-9a-f-]{36}@[0-9a-f-]{36}\/IncomingWebhook\/[0-9a-z]{32}\/[0-9a-f-]{36}/gi,
    gitleaks: ['microsoft-teams-webhook'],
  },
  { name: 'Stripe secret key', pattern: /\b[rs]k_(?:live|test|prod)_[0-9A-Za-z]{10,99}\b/g, gitleaks: ['stripe-access-token'] },
  { name: 'Google API key', pattern: /\bAIza[0-9A-Za-z_-]{35}/g, gitleaks: ['gcp-api-key'] },
  { name: 'npm token', pattern: /\bnpm_[A-Za-z0-9]{36}\b/g, gitleaks: ['npm-access-token'] },
  { name: 'SendGrid key', pattern: /\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}/g, gitleaks: ['sendgrid-api-token'] },
  // A JWT, or one base64-encoded again (`eyJ` encodes to `ZXlK`).
  { name: 'JSON Web Token', pattern: /\beyJ[0-9A-Za-z_-]{5,}\.eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*|\bZXlK[A-Za-z0-9+/]{40,}={0,2}/g, gitleaks: ['jwt', 'jwt-base64'] },
  {
    name: '1Password secret',
    pattern: /\bA3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b|\bops_eyJ[A-Za-z0-9+/]{250,}={0,3}/g,
    gitleaks: ['1password-secret-key', '1password-service-account-token'],
  },
  { name: 'Adobe client secret', pattern: /\bp8e-[A-Za-z0-9]{32}\b/g, gitleaks: ['adobe-client-secret'] },
  { name: 'age secret key', pattern: /\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b/g, gitleaks: ['age-secret-key'] },
  { name: 'Airtable token', pattern: /\bpat[A-Za-z0-9]{14}\.[0-9a-f]{64}\b/g, gitleaks: ['airtable-personnal-access-token'] },
  { name: 'Alibaba Cloud access key id', pattern: /\bLTAI[A-Za-z0-9]{20}\b/g, gitleaks: ['alibaba-access-key-id'] },
  { name: 'Anthropic API key', pattern: /\bsk-ant-(?:api03|admin01)-[\w-]{93}AA(?![\w-])/g, gitleaks: ['anthropic-api-key', 'anthropic-admin-api-key'] },
  { name: 'Artifactory token', pattern: /\bAKCp[A-Za-z0-9]{69}\b|\bcmVmd[A-Za-z0-9]{59}\b/g, gitleaks: ['artifactory-api-key', 'artifactory-reference-token'] },
  {
    name: 'Authress access key',
    pattern: /\b(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_-][a-z0-9-]{10,32}\.[A-Za-z0-9+/_=-]{30,120}/g,
    gitleaks: ['authress-service-client-access-key'],
  },
  { name: 'Azure AD client secret', pattern: /(?<![\w~.-])[\w~.]{3}\dQ~[\w~.-]{31,34}(?![\w~.-])/g, gitleaks: ['azure-ad-client-secret'] },
  { name: 'ClickHouse Cloud key', pattern: /\b4b1d[A-Za-z0-9]{38}\b/g, gitleaks: ['clickhouse-cloud-api-secret-key'] },
  { name: 'Clojars token', pattern: /\bCLOJARS_[A-Za-z0-9]{60}\b/gi, gitleaks: ['clojars-api-token'] },
  { name: 'Cloudflare Origin CA key', pattern: /\bv1\.0-[0-9a-f]{24}-[0-9a-f]{146}\b/g, gitleaks: ['cloudflare-origin-ca-key'] },
  { name: 'Databricks token', pattern: /\bdapi[0-9a-f]{32}(?:-\d)?\b/g, gitleaks: ['databricks-api-token'] },
  { name: 'DigitalOcean token', pattern: /\bdo[opr]_v1_[0-9a-f]{64}\b/g, gitleaks: ['digitalocean-access-token', 'digitalocean-pat', 'digitalocean-refresh-token'] },
  { name: 'Doppler token', pattern: /\bdp\.pt\.[A-Za-z0-9]{43}\b/g, gitleaks: ['doppler-api-token'] },
  { name: 'Duffel token', pattern: /\bduffel_(?:test|live)_[\w=-]{43}/g, gitleaks: ['duffel-api-token'] },
  { name: 'Dynatrace token', pattern: /\bdt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}\b/g, gitleaks: ['dynatrace-api-token'] },
  { name: 'EasyPost key', pattern: /\bEZ[AT]K[A-Za-z0-9]{54}\b/g, gitleaks: ['easypost-api-token', 'easypost-test-api-token'] },
  { name: 'Facebook page access token', pattern: /\bEAA[MC][A-Za-z0-9]{100,}/g, gitleaks: ['facebook-page-access-token'] },
  { name: 'Flutterwave key', pattern: /\bFLW(?:SECK|PUBK)_TEST-[a-hA-H0-9]{12}/g, gitleaks: ['flutterwave-secret-key', 'flutterwave-public-key', 'flutterwave-encryption-key'] },
  { name: 'Fly.io token', pattern: /\b(?:fo1_[\w-]{43}|fm1[ar]_[A-Za-z0-9+/]{100,}={0,3}|fm2_[A-Za-z0-9+/]{100,}={0,3})/g, gitleaks: ['flyio-access-token'] },
  { name: 'Frame.io token', pattern: /\bfio-u-[\w=-]{64}/g, gitleaks: ['frameio-api-token'] },
  {
    name: 'Grafana token',
    pattern: /\beyJrIjoi[A-Za-z0-9]{70,400}={0,3}|\bglc_[A-Za-z0-9+/]{32,400}={0,3}|\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b/g,
    gitleaks: ['grafana-api-key', 'grafana-cloud-api-token', 'grafana-service-account-token'],
  },
  { name: 'Harness token', pattern: /\b(?:pat|sat)\.[\w-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}\b/g, gitleaks: ['harness-api-key'] },
  { name: 'HashiCorp Terraform token', pattern: /\b[A-Za-z0-9]{14}\.atlasv1\.[\w=-]{60,70}/g, gitleaks: ['hashicorp-tf-api-token'] },
  // Current Vault tokens; the legacy `s.<24 characters>` form is too short to tell from prose.
  { name: 'HashiCorp Vault token', pattern: /\bhv[bs]\.[\w-]{90,300}/g, gitleaks: ['vault-service-token', 'vault-batch-token'] },
  { name: 'Heroku API key', pattern: /\bHRKU-AA[\w-]{58}/g, gitleaks: ['heroku-api-key-v2'] },
  { name: 'Hugging Face token', pattern: /\b(?:hf_|api_org_)[A-Za-z]{34}\b/g, gitleaks: ['huggingface-access-token', 'huggingface-organization-api-token'] },
  { name: 'Infracost token', pattern: /\bico-[A-Za-z0-9]{32}\b/g, gitleaks: ['infracost-api-token'] },
  { name: 'Intra42 client secret', pattern: /\bs-s4t2(?:ud|af)-[0-9a-f]{64}\b/g, gitleaks: ['intra42-client-secret'] },
  { name: 'Linear API key', pattern: /\blin_api_[A-Za-z0-9]{40}\b/g, gitleaks: ['linear-api-key'] },
  { name: 'MaxMind license key', pattern: /\b[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk\b/g, gitleaks: ['maxmind-license-key'] },
  { name: 'Notion token', pattern: /\bntn_[0-9]{11}[A-Za-z0-9]{35}\b/g, gitleaks: ['notion-api-token'] },
  { name: 'Octopus Deploy key', pattern: /\bAPI-[A-Z0-9]{26}\b/g, gitleaks: ['octopus-deploy-api-key'] },
  // `T3BlbkFJ` is "OpenAI" in base64, in the middle of every OpenAI secret key.
  {
    name: 'OpenAI API key',
    pattern: /\bsk-(?:(?:proj|svcacct|admin)-[\w-]{58,74}T3BlbkFJ[\w-]{58,74}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})\b/g,
    gitleaks: ['openai-api-key'],
  },
  { name: 'OpenShift token', pattern: /\bsha256~[\w-]{43}(?![\w-])/g, gitleaks: ['openshift-user-token'] },
  { name: 'Perplexity key', pattern: /\bpplx-[A-Za-z0-9]{48}\b/g, gitleaks: ['perplexity-api-key'] },
  { name: 'PlanetScale token', pattern: /\bpscale_(?:tkn|oauth|pw)_[\w=.-]{32,64}/g, gitleaks: ['planetscale-api-token', 'planetscale-oauth-token', 'planetscale-password'] },
  { name: 'Postman key', pattern: /\bPMAK-[0-9a-fA-F]{24}-[0-9a-fA-F]{34}\b/g, gitleaks: ['postman-api-token'] },
  { name: 'Prefect key', pattern: /\bpnu_[A-Za-z0-9]{36}\b/g, gitleaks: ['prefect-api-token'] },
  { name: 'Pulumi token', pattern: /\bpul-[0-9a-f]{40}\b/g, gitleaks: ['pulumi-api-token'] },
  // `AgEIcHlwaS5vcmc` is the start of every PyPI macaroon ("pypi.org").
  { name: 'PyPI token', pattern: /\bpypi-AgEIcHlwaS5vcmc[\w-]{50,}/g, gitleaks: ['pypi-upload-token'] },
  { name: 'ReadMe key', pattern: /\brdme_[a-z0-9]{70}\b/g, gitleaks: ['readme-api-token'] },
  { name: 'RubyGems key', pattern: /\brubygems_[0-9a-f]{48}\b/g, gitleaks: ['rubygems-api-token'] },
  { name: 'Scalingo token', pattern: /\btk-us-[\w-]{48}/g, gitleaks: ['scalingo-api-token'] },
  { name: 'Brevo (Sendinblue) key', pattern: /\bxkeysib-[0-9a-f]{64}-[A-Za-z0-9]{16}\b/g, gitleaks: ['sendinblue-api-token'] },
  { name: 'Sentry token', pattern: /\bsntryu_[0-9a-f]{64}\b|\bsntrys_eyJ[A-Za-z0-9+/=]{20,400}_[A-Za-z0-9+/]{43}/g, gitleaks: ['sentry-user-token', 'sentry-org-token'] },
  {
    name: 'SettleMint token',
    pattern: /\bsm_[aps]at_[A-Za-z0-9]{16}\b/g,
    gitleaks: ['settlemint-application-access-token', 'settlemint-personal-access-token', 'settlemint-service-access-token'],
  },
  { name: 'Shippo token', pattern: /\bshippo_(?:live|test)_[0-9a-fA-F]{40}\b/g, gitleaks: ['shippo-api-token'] },
  {
    name: 'Shopify token',
    pattern: /\bshp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}\b/g,
    gitleaks: ['shopify-access-token', 'shopify-custom-access-token', 'shopify-private-app-access-token', 'shopify-shared-secret'],
  },
  { name: 'Sourcegraph token', pattern: /\bsgp_(?:(?:[0-9a-fA-F]{16}|local)_)?[0-9a-fA-F]{40}\b/g, gitleaks: ['sourcegraph-access-token'] },
  { name: 'Square token', pattern: /\b(?:EAAA|sq0atp-)[\w-]{22,60}/g, gitleaks: ['square-access-token'] },
  { name: 'Twilio API key', pattern: /\bSK[0-9a-fA-F]{32}\b/g, gitleaks: ['twilio-api-key'] },
  // Rules that gitleaks only applies next to the vendor's name, here where the value carries a
  // prefix or a structure of its own.
  { name: 'Atlassian API token', pattern: /\bATATT3[\w=-]{186}/g, gitleaks: ['atlassian-api-token'] },
  { name: 'Defined Networking token', pattern: /\bdnkey-[\w=-]{26}-[\w=-]{52}/g, gitleaks: ['defined-networking-api-token'] },
  {
    name: 'Dropbox token',
    pattern: /\bsl\.[\w=-]{135,}|\b[A-Za-z0-9]{11}AAAAAAAAAA[\w=-]{43}(?![\w=-])/g,
    gitleaks: ['dropbox-short-lived-api-token', 'dropbox-long-lived-api-token'],
  },
  { name: 'Mailchimp API key', pattern: /\b[0-9a-f]{32}-us\d{1,2}\b/g, gitleaks: ['mailchimp-api-key'] },
  { name: 'Mapbox token', pattern: /\b[ps]k\.[A-Za-z0-9]{60}\.[A-Za-z0-9_-]{22}\b/g, gitleaks: ['mapbox-api-token'] },
  {
    name: 'New Relic key',
    pattern: /\bNR(?:AK-[A-Za-z0-9]{27}|II-[A-Za-z0-9-]{32}|JS-[0-9a-f]{19})\b/g,
    gitleaks: ['new-relic-user-api-key', 'new-relic-insert-key', 'new-relic-browser-api-token'],
  },
  { name: 'Plaid access token', pattern: /\baccess-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, gitleaks: ['plaid-api-token'] },
  { name: 'SonarQube token', pattern: /\bsq[upa]_[0-9a-f]{40}\b/g, gitleaks: ['sonar-api-token'] },
  { name: 'Telegram bot token', pattern: /\b\d{5,16}:A[\w-]{34}(?![\w-])/g, gitleaks: ['telegram-bot-api-token'] },
  { name: 'Typeform token', pattern: /\btfp_[\w.=-]{59}/g, gitleaks: ['typeform-api-token'] },
  { name: 'Yandex Cloud API key', pattern: /\bAQVN[\w-]{35,38}(?![\w-])/g, gitleaks: ['yandex-api-key'] },
  { name: 'password in a URL', pattern: /\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:[^\s/@]+@/gi, gitleaks: ['sidekiq-sensitive-url'] },
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
  return scrubSecrets(
    message
      .replace(/\b(?:postgres(?:ql)?|rediss?):\/\/[^\s]+/gi, (url) => `${url.slice(0, url.indexOf(':'))}://<redacted>`)
      // Drivers append the peer to network errors (`connect ECONNREFUSED 10.0.0.5:5432`,
      // `write CONNECT_TIMEOUT db.internal:5432`): the address is infrastructure, not the error.
      .replace(/(\b(?:E[A-Z]+|CONNECT(?:ION)?_[A-Z]+)\b)\s+\[?[A-Za-z0-9.:-]*[A-Za-z0-9\]]:\d{1,5}\b/g, '$1 <address>')
      .replace(/\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b/g, '<address>'),
  ).slice(0, 1000);
}
