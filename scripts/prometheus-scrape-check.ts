/**
 * `npm run check:prometheus`: the observability kit against a real Prometheus and a real kernel.
 *
 * Starts a kernel on loopback (embedded PGlite in a scratch directory, or SCRAPE_CHECK_DATABASE_URL;
 * jobs on, METRICS_TOKEN set), and Debian's `prometheus` on loopback with a generated config that
 * scrapes it every second with the bearer token and loads deploy/observability's alert rules.
 * Makes the kernel produce the series the rules read (a blocklist rule and a blocked request,
 * requests past the rate limit), then asks Prometheus' HTTP API:
 *   - every metric an alert rule reads has series;
 *   - every rule's expression evaluates (an empty answer is fine: nothing is firing);
 *   - every rule reports health "ok" once Prometheus has evaluated it;
 *   - every dashboard panel's query is valid PromQL for this Prometheus.
 * Also runs `promtool check config` on the generated config and on the example config.
 * Bounded in time (SCRAPE_CHECK_TIMEOUT_MS, default 240 s; a missing dist/ is compiled first); kills what it started; exits 1 on
 * any failure. Traffic goes to 127.0.0.1 only.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { generateApiKey } from '../plugins/api-keys/key-format.js';
import { EnvSchema } from '../src/env.js';
import { freePort } from '../test/helpers/free-port.js';
import { alertRules, dashboard, dashboardExpressions, exampleConfigFile, kitDir, metricNames, rulesFile } from './observability-kit.js';

const root = path.resolve(kitDir, '..', '..');
const started = Date.now();
const TIMEOUT_MS = Number(process.env.SCRAPE_CHECK_TIMEOUT_MS ?? 240_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const say = (line: string) => console.log(`[${elapsed()}] ${line}`);

const children: ChildProcess[] = [];
const scratch = mkdtempSync(path.join(tmpdir(), 'valhalla-scrape-check-'));
let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const force = setTimeout(() => child.kill('SIGKILL'), 5000);
          child.once('exit', () => {
            clearTimeout(force);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  rmSync(scratch, { recursive: true, force: true });
}
async function fail(message: string, logs?: string[]): Promise<never> {
  console.error(`prometheus-scrape-check: FAILED after ${elapsed()}: ${message}`);
  for (const line of (logs ?? []).slice(-30)) console.error(`  | ${line}`);
  await cleanup();
  process.exit(1);
}
const deadline = setTimeout(() => void fail(`did not finish within ${TIMEOUT_MS} ms`, [...kernelLog, ...prometheusLog]), TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void fail(`stopped by ${signal}`));

function start(command: string, args: string[], env: NodeJS.ProcessEnv, log: string[]): ChildProcess {
  const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream?.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      log.push(...lines);
      if (log.length > 500) log.splice(0, log.length - 500);
    });
  }
  return child;
}

async function until<T>(what: string, attempt: () => Promise<T | undefined>, timeoutMs: number, logs: string[] = []): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await attempt().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) return fail(`${what}: not within ${timeoutMs} ms`, logs);
    await sleep(250);
  }
}

function promtool(args: string[]): void {
  const run = spawnSync('promtool', args, { encoding: 'utf8', timeout: 30_000 });
  if (run.status !== 0) void fail(`promtool ${args.join(' ')}`, (run.stdout + run.stderr).split('\n'));
  say(`promtool ${args[0]} ${args[1]} ${path.basename(args[2] ?? '')}: ok`);
}

for (const tool of ['prometheus', 'promtool']) {
  if (spawnSync(tool, ['--version']).status !== 0) await fail(`${tool} is not installed (Debian: apt-get install prometheus)`);
}

// ---- the kernel ----
const kernelLog: string[] = [];
const prometheusLog: string[] = [];
const kernelPort = await freePort();
const token = randomBytes(24).toString('hex');
const adminKey = generateApiKey().token;
const kernelKeys = new Set(Object.keys(EnvSchema.properties));
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !kernelKeys.has(k) && k !== 'TEST_DATABASE_URL'));
const database = process.env.SCRAPE_CHECK_DATABASE_URL;
const kernel = start(
  process.execPath,
  ['scripts/run.mjs', 'src/server'],
  {
    ...baseEnv,
    HOST: '127.0.0.1',
    PORT: String(kernelPort),
    ...(database ? { DATABASE_URL: database } : { DATA_DIR: path.join(scratch, 'data') }),
    EXPORT_DIR: path.join(scratch, 'exports'),
    LOG_LEVEL: 'warn',
    RUN_JOBS: 'true',
    METRICS_TOKEN: token,
    ADMIN_API_KEY: adminKey,
    METRICS_REFRESH_INTERVAL_MS: '1000',
    AUDIT_VERIFY_INTERVAL_MS: '2000',
    JOB_POLL_INTERVAL_MS: '250',
    TRACE_SAMPLE_RATE: '0',
    RATE_LIMIT_DEFAULT_MAX: '20',
    // Requests past the limit below must not get loopback itself blocked.
    BLOCKLIST_RATE_LIMIT_THRESHOLD: '0',
    BLOCKLIST_AUTH_FAILURE_THRESHOLD: '0',
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
  },
  kernelLog,
);
kernel.once('exit', (code, signal) => {
  if (!cleaned) void fail(`the kernel exited (${code ?? signal})`, kernelLog);
});
const origin = `http://127.0.0.1:${kernelPort}`;
await until('kernel /ready', async () => ((await fetch(`${origin}/ready`)).status === 200 ? true : undefined), 150_000, kernelLog);
say(`kernel ready on ${origin} (${database ? 'PostgreSQL' : 'PGlite'})`);

// ---- Prometheus ----
writeFileSync(path.join(scratch, 'token'), token, { mode: 0o600 });
copyFileSync(rulesFile, path.join(scratch, 'valhalla-alerts.yml'));
const promPort = await freePort();
const config = {
  global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
  rule_files: ['valhalla-alerts.yml'],
  scrape_configs: [{ job_name: 'valhalla', metrics_path: '/metrics', authorization: { type: 'Bearer', credentials_file: path.join(scratch, 'token') }, static_configs: [{ targets: [`127.0.0.1:${kernelPort}`] }] }],
};
const configFile = path.join(scratch, 'prometheus.yml');
writeFileSync(configFile, stringify(config));
promtool(['check', 'config', configFile]);
// The example config, its token file pointed at a real file (promtool checks that it exists).
const example = path.join(scratch, 'prometheus.example.yml');
writeFileSync(example, readFileSync(exampleConfigFile, 'utf8').replaceAll('/etc/prometheus/secrets/valhalla-metrics-token', path.join(scratch, 'token')));
promtool(['check', 'config', example]);

const prometheus = start(
  'prometheus',
  [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(scratch, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
  baseEnv,
  prometheusLog,
);
prometheus.once('exit', (code, signal) => {
  if (!cleaned) void fail(`prometheus exited (${code ?? signal})`, prometheusLog);
});
const promApi = `http://127.0.0.1:${promPort}`;
await until('prometheus /-/ready', async () => ((await fetch(`${promApi}/-/ready`)).status === 200 ? true : undefined), 30_000, prometheusLog);
say(`prometheus ready on ${promApi}`);

interface QueryAnswer {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: unknown[] };
}
async function query(expr: string): Promise<QueryAnswer> {
  const res = await fetch(`${promApi}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr }) });
  return (await res.json()) as QueryAnswer;
}

// ---- traffic that makes the event counters exist ----
const admin = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
const rule = await fetch(`${origin}/system/security/blocklist`, { method: 'POST', headers: admin, body: JSON.stringify({ type: 'user_agent', value: 'ScrapeCheckScanner*', reason: 'prometheus scrape check' }) });
if (rule.status !== 201) await fail(`creating a blocklist rule answered ${rule.status}: ${await rule.text()}`);
let blocked = 0;
for (let i = 0; i < 5; i++) if ((await fetch(`${origin}/system/info`, { headers: { 'user-agent': 'ScrapeCheckScanner/1.0' } })).status === 403) blocked++;
if (blocked === 0) await fail('the blocklist rule blocked nothing');
let limited = 0;
for (let i = 0; i < 40 && limited === 0; i++) if ((await fetch(`${origin}/system/info`, { headers: admin })).status === 429) limited++;
if (limited === 0) await fail('no request was answered 429 past RATE_LIMIT_DEFAULT_MAX');
say(`traffic: ${blocked} blocked, rate limit reached`);

// ---- the series each rule reads ----
const rules = alertRules();
const needed = [...new Set(rules.flatMap((r) => metricNames(r.expr)))].sort();
const missing = new Set(needed);
await until(
  `series for ${[...missing].join(', ')}`,
  async () => {
    for (const name of [...missing]) {
      const answer = await query(`count(${name}{job="valhalla"})`);
      if (answer.status === 'success' && (answer.data?.result.length ?? 0) > 0) missing.delete(name);
    }
    return missing.size === 0 ? true : undefined;
  },
  60_000,
  kernelLog,
);
const up = await query('up{job="valhalla"} == 1');
if ((up.data?.result.length ?? 0) !== 1) await fail('up{job="valhalla"} is not 1: the scrape (with the bearer token) fails', prometheusLog);
say(`series present for all ${needed.length} metrics the ${rules.length} rules read: ${needed.join(', ')}`);

for (const r of rules) {
  const answer = await query(r.expr);
  if (answer.status !== 'success') await fail(`rule ${r.alert}: ${answer.error}`);
}
say(`every rule expression evaluates`);

interface RulesAnswer {
  data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; lastEvaluation: string }> }> };
}
const evaluated = await until(
  'every rule evaluated once',
  async () => {
    const answer = (await (await fetch(`${promApi}/api/v1/rules?type=alert`)).json()) as RulesAnswer;
    const all = answer.data.groups.flatMap((g) => g.rules);
    return all.length === rules.length && all.every((x) => !x.lastEvaluation.startsWith('0001-')) ? all : undefined;
  },
  30_000,
  prometheusLog,
);
const unhealthy = evaluated.filter((x) => x.health !== 'ok');
if (unhealthy.length > 0) await fail(`rules not healthy: ${unhealthy.map((x) => `${x.name} (${x.health}: ${x.lastError})`).join('; ')}`);
say(`all ${evaluated.length} rules loaded by Prometheus and healthy`);

// ---- the dashboard's queries, Grafana's variables filled in ----
const exprs = dashboardExpressions(dashboard());
for (const expr of exprs) {
  const answer = await query(expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.*').replaceAll('$instance', '.*'));
  if (answer.status !== 'success') await fail(`dashboard query ${expr}: ${answer.error}`);
}
say(`all ${exprs.length} dashboard queries are valid PromQL here`);

clearTimeout(deadline);
await cleanup();
console.log(`prometheus-scrape-check: ok in ${elapsed()}`);
