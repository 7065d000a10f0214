import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/**
 * Every setting the kernel reads, from environment variables only. A bad value stops the
 * process at start with one line naming the variable and what it expected (see README).
 */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'production', maxLength: 32 }),
  HOST: Type.String({ default: '0.0.0.0', minLength: 1, maxLength: 255 }),
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535 }),
  WORKER_PORT: Type.Integer({ default: 3001, minimum: 0, maximum: 65535, description: '`npm run worker` answers /live, /ready and /metrics on this port (HOST), for probes and Prometheus' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', maxLength: 2048 })),
  DATA_DIR: Type.String({ default: './data', minLength: 1, maxLength: 1024 }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  TRUST_PROXY: Type.String({ default: '', maxLength: 4096, description: 'comma-separated addresses/CIDRs of trusted proxies' }),
  BODY_LIMIT: Type.Integer({ default: 1_048_576, minimum: 1024, maximum: 104_857_600 }),
  PACKS_DISABLED: Type.String({ default: '', maxLength: 4096 }),
  RUN_JOBS: Type.Boolean({ default: true }),
  INSTANCE_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  TRACE_SAMPLE_RATE: Type.Number({ default: 0.05, minimum: 0, maximum: 1, description: 'share of new traces recorded; an inbound sampled flag wins' }),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 512 })),
  ADMIN_API_KEY: Type.Optional(Type.String({ pattern: '^vhk_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}$', description: 'admin key ensured at start (format of `vhk_…` keys)' })),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', maxLength: 2048, description: 'shared rate-limit counters across instances' })),
  RATE_LIMIT_DEFAULT_MAX: Type.Integer({ default: 1000, minimum: 0, maximum: 1_000_000_000, description: 'requests per window for a caller no rate-limit rule covers; 0: no default limit' }),
  RATE_LIMIT_DEFAULT_WINDOW_SECONDS: Type.Integer({ default: 60, minimum: 1, maximum: 86_400 }),
  RATE_LIMIT_REDIS_PREFIX: Type.String({ default: 'valhalla:rl:', minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9:._-]+$', description: 'prefix of the rate-limit and quota keys in Redis' }),
  RATE_LIMIT_REDIS_TIMEOUT_MS: Type.Integer({ default: 200, minimum: 10, maximum: 10_000, description: 'a Redis command slower than this fails open (request allowed, logged, counted)' }),
  BLOCKLIST_RATE_LIMIT_THRESHOLD: Type.Integer({ default: 100, minimum: 0, maximum: 1_000_000, description: '429 answers to one address within the window that turn into a temporary block (origin `rate_limit`); 0: never' }),
  BLOCKLIST_RATE_LIMIT_WINDOW_SECONDS: Type.Integer({ default: 60, minimum: 1, maximum: 86_400 }),
  BLOCKLIST_AUTH_FAILURE_THRESHOLD: Type.Integer({ default: 20, minimum: 0, maximum: 1_000_000, description: '401 answers to one address within the window that turn into a temporary block (origin `auth_failure`); 0: never' }),
  BLOCKLIST_AUTH_FAILURE_WINDOW_SECONDS: Type.Integer({ default: 300, minimum: 1, maximum: 86_400 }),
  BLOCKLIST_ESCALATION_TTL_SECONDS: Type.Integer({ default: 900, minimum: 1, maximum: 31_536_000, description: 'lifetime of a first automatic block; doubled for each repeat offence within the look-back' }),
  BLOCKLIST_ESCALATION_MAX_TTL_SECONDS: Type.Integer({ default: 604_800, minimum: 1, maximum: 31_536_000, description: 'the longest an automatic block grows to' }),
  BLOCKLIST_ESCALATION_LOOKBACK_DAYS: Type.Integer({ default: 30, minimum: 1, maximum: 3650, description: 'an offence counts as a repeat if the previous one was this recent' }),
  BLOCKLIST_ALWAYS_ALLOW: Type.String({ default: '', maxLength: 4096, description: 'comma-separated addresses/CIDRs no blocklist rule blocks and escalation never blocks (the operators\' break-glass network); a bad entry stops the start' }),
  BLOCKLIST_EVENT_INTERVAL_MS: Type.Integer({ default: 10_000, minimum: 100, maximum: 3_600_000, description: 'blocked/monitored/429/401 counts are written (as per-minute roll-ups) and logged (one line per rule) this often' }),
  READY_DB_TIMEOUT_MS: Type.Integer({ default: 1000, minimum: 50, maximum: 60_000 }),
  DB_ACQUIRE_TIMEOUT_MS: Type.Integer({ default: 2000, minimum: 100, maximum: 60_000, description: 'how long a statement or transaction may wait for a live PostgreSQL connection before failing with 503 (and never running later)' }),
  DB_STATEMENT_TIMEOUT_MS: Type.Integer({ default: 30_000, minimum: 0, maximum: 3_600_000, description: 'PostgreSQL statement_timeout for the pool; a connection silent this long plus 2 s after a request is cut as a dead link; 0: off' }),
  CONFIG_ENVIRONMENT: Type.String({ default: 'default', pattern: '^[a-z][a-z0-9-]{0,31}$', description: 'environment whose config entries override `default` in app.config' }),
  STATE_RELOAD_INTERVAL_MS: Type.Integer({ default: 30_000, minimum: 1000, maximum: 3_600_000 }),
  BATCH_FLUSH_INTERVAL_MS: Type.Integer({ default: 1000, minimum: 10, maximum: 60_000 }),
  BATCH_MAX_QUEUE: Type.Integer({ default: 10_000, minimum: 100, maximum: 1_000_000 }),
  JOB_POLL_INTERVAL_MS: Type.Integer({ default: 1000, minimum: 50, maximum: 60_000 }),
  METRICS_SNAPSHOT_INTERVAL_MS: Type.Integer({ default: 60_000, minimum: 1000, maximum: 86_400_000 }),
  METRICS_REFRESH_INTERVAL_MS: Type.Integer({ default: 15_000, minimum: 100, maximum: 3_600_000, description: 'how often the gauges read from the database (valhalla_ready, valhalla_job_backlog, valhalla_outbox_*) are refreshed; never per scrape' }),
  AUDIT_VERIFY_INTERVAL_MS: Type.Integer({ default: 3_600_000, minimum: 0, maximum: 604_800_000, description: 'how often one instance running jobs walks the audit hash chain for valhalla_audit_chain_ok; 0: never' }),
  MAINTENANCE_SWEEP_INTERVAL_MS: Type.Integer({ default: 5000, minimum: 1000, maximum: 3_600_000, description: 'how often the maintenance sweep records passed untils and window starts/ends' }),
  WEBHOOK_ALLOW_PRIVATE: Type.Boolean({ default: false, description: 'let webhook, SMS and email (SMTP host) deliveries reach loopback, private, link-local, CGNAT, unique-local, IPv4-mapped and other non-public addresses and localhost names' }),
  NOTIFY_DISPATCH_INTERVAL_MS: Type.Integer({ default: 1000, minimum: 50, maximum: 60_000, description: 'how often each instance running jobs looks for due outbox rows' }),
  NOTIFY_DISPATCH_BATCH: Type.Integer({ default: 100, minimum: 1, maximum: 1000, description: 'outbox rows one dispatcher claims at a time' }),
  NOTIFY_DISPATCH_CONCURRENCY: Type.Integer({ default: 16, minimum: 1, maximum: 256, description: 'deliveries one dispatcher has in flight at once' }),
  AUDIT_RETENTION_FLOOR_DAYS: Type.Integer({ default: 365, minimum: 1, maximum: 36_500, description: 'the shortest retention a policy may set for the audit trail (admin_operations)' }),
  RETENTION_INTERVAL_MS: Type.Integer({ default: 3_600_000, minimum: 1000, maximum: 86_400_000, description: 'how often the retention purge runs (one instance at a time)' }),
  RETENTION_BATCH_SIZE: Type.Integer({ default: 1000, minimum: 1, maximum: 100_000, description: 'rows one purge transaction deletes' }),
  RETENTION_BATCH_PAUSE_MS: Type.Integer({ default: 20, minimum: 0, maximum: 10_000, description: 'pause between purge batches, so writers and vacuum keep up' }),
  RETENTION_RUN_BUDGET_MS: Type.Integer({ default: 10_000, minimum: 100, maximum: 3_600_000, description: 'longest one category is purged per run (the job holds up this instance\'s other periodic jobs meanwhile); the rest waits for the next run' }),
  EXPORT_DIR: Type.String({ default: './data/exports', minLength: 1, maxLength: 1024, description: 'where export files are written' }),
  EXPORT_TTL_HOURS: Type.Integer({ default: 24, minimum: 1, maximum: 8760, description: 'how long an export file can be downloaded before the expiry job deletes it' }),
  EXPORT_HEAP_GROWING_PERCENT: Type.Integer({ default: 100, minimum: 0, maximum: 300, description: "while an export runs, V8's old space may grow this far past the live heap before a full collection (percent); 0 = V8's own heuristic (up to 4x)" }),
  EXPORT_BATCH_SIZE: Type.Integer({ default: 5000, minimum: 1, maximum: 100_000, description: 'rows an export reads per query (memory holds one batch)' }),
  EXPORT_EXPIRY_INTERVAL_MS: Type.Integer({ default: 600_000, minimum: 1000, maximum: 86_400_000, description: 'how often expired export files are deleted' }),
  HONEYPOT_ALERT_THROTTLE_SECONDS: Type.Integer({ default: 300, minimum: 0, maximum: 86_400, description: 'at most one security incident and notification per honeypot source address in this many seconds (per instance); 0: every hit' }),
  SHUTDOWN_DELAY_MS: Type.Integer({ default: 0, minimum: 0, maximum: 120_000, description: 'time between failing readiness and closing the listener' }),
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ default: 10_000, minimum: 100, maximum: 600_000 }),
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ default: 1000, minimum: 0, maximum: 60_000 }),
  PRESSURE_MAX_HEAP_BYTES: Type.Integer({ default: 0, minimum: 0 }),
  PRESSURE_MAX_RSS_BYTES: Type.Integer({ default: 0, minimum: 0 }),
  PRESSURE_RETRY_AFTER_SECONDS: Type.Integer({ default: 10, minimum: 1, maximum: 3600 }),
});

export type Env = Static<typeof EnvSchema>;

export class EnvError extends Error {
  override name = 'EnvError';
}

/** Reads the kernel's settings from `source` (default `process.env`); throws one readable line on a bad value. */
export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  const known = Object.keys(EnvSchema.properties);
  const picked: Record<string, unknown> = {};
  for (const key of known) {
    const raw = source[key];
    if (raw !== undefined && raw !== '') picked[key] = raw.trim();
  }
  const withDefaults = Value.Default(EnvSchema, Value.Convert(EnvSchema, picked));
  const first = Value.Errors(EnvSchema, withDefaults).First();
  if (first) {
    const variable = first.path.replace(/^\//, '') || 'environment';
    const shown = picked[variable] === undefined ? 'unset' : JSON.stringify(picked[variable]);
    throw new EnvError(`invalid environment variable ${variable}=${variable.includes('URL') || variable.includes('TOKEN') || variable.includes('KEY') ? '<redacted>' : shown}: ${first.message}`);
  }
  return withDefaults as Env;
}

/** Environment for tests and embedding: defaults plus explicit overrides, without reading process.env. */
export function envWith(overrides: Partial<Env> = {}): Env {
  return { ...loadEnv({}), ...overrides };
}
