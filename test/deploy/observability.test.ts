import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertRules, dashboard, dashboardExpressions, exposedNames, metricNames, rulesFile, rulesTestFile, SCRAPE_SERIES } from '../../scripts/observability-kit.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

/** `promtool` is on PATH (Debian's `prometheus` package; .ci/run installs it). */
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

// Every metric the kit reads must be one the kernel declares: a renamed metric fails here, not
// on an operator's empty panel or silent alert.
let t: TestApp;
let declared: Set<string>;
beforeAll(async () => {
  t = await createTestApp();
  const res = await t.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  declared = new Set([...exposedNames(res.body), ...SCRAPE_SERIES]);
});
afterAll(async () => t?.close());

describe('metricNames', () => {
  it('picks the metric names out of an expression, not functions, label names or variables', () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{job=~"$job", route!~"/live"}[$__rate_interval]))) > 1 and on (instance) up == 1',
      ).sort(),
    ).toEqual(['http_request_duration_seconds_bucket', 'up']);
    expect(metricNames('time() - max(valhalla_audit_chain_verified_timestamp_seconds{job=~"valhalla.*"}) > 3 * 3600')).toEqual(['valhalla_audit_chain_verified_timestamp_seconds']);
    expect(metricNames('sum by (class) (label_replace(rate(x_total[5m]), "class", "${1}xx", "status_code", "([0-9]).."))')).toEqual(['x_total']);
  });
});

describe('alert rules (deploy/observability/prometheus)', () => {
  const rules = alertRules();

  it('name each alert once, with a severity, a summary and a description', () => {
    expect(rules.length).toBeGreaterThanOrEqual(8);
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
    for (const r of rules) {
      expect(['critical', 'warning'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.description, r.alert).toBeTruthy();
    }
  });

  it('cover what the operators asked for', () => {
    const exprs = rules.map((r) => r.expr).join('\n');
    for (const needed of ['up{', 'valhalla_ready', 'status_code=~"5..', 'histogram_quantile(0.99', 'valhalla_outbox_dead', 'valhalla_job_backlog', 'valhalla_audit_chain_ok', 'valhalla_blocklist_blocked_total']) {
      expect(exprs, needed).toContain(needed);
    }
  });

  it('read only metrics the kernel declares', () => {
    for (const r of rules) {
      const names = metricNames(r.expr);
      expect(names.length, r.alert).toBeGreaterThan(0);
      for (const name of names) expect(declared.has(name), `${r.alert}: ${name}`).toBe(true);
    }
  });

  it.skipIf(!hasPromtool)('pass promtool check rules and the rules unit tests', () => {
    const check = spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const unit = spawnSync('promtool', ['test', 'rules', rulesTestFile], { encoding: 'utf8' });
    expect(unit.status, unit.stdout + unit.stderr).toBe(0);
  });
});

describe('Grafana dashboard (deploy/observability/grafana)', () => {
  const d = dashboard();

  it('takes its Prometheus from the DS_PROMETHEUS variable on every panel and query', () => {
    const variable = d.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
    expect(variable).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const p of d.panels.filter((x) => x.type !== 'row')) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      for (const target of p.targets ?? []) expect(target.datasource?.uid, p.title).toBe('${DS_PROMETHEUS}');
    }
    // No datasource name or uid of the machine it was made on.
    expect(JSON.stringify(d)).not.toMatch(/"uid":\s*"(?!\$\{DS_PROMETHEUS\}|valhalla-kernel)[^"]*"/);
  });

  it('lays out unique panels within the 24-column grid', () => {
    expect(d.uid).toBe('valhalla-kernel');
    expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
    for (const p of d.panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
  });

  it('has the panels operators look for, per instance where it matters', () => {
    const titles = d.panels.map((p) => p.title);
    for (const title of ['Request rate by instance', 'p99 latency by instance', '4xx and 5xx rate', 'Blocklist: blocked requests', 'Rate limits: 429 answers', 'Job backlog (cluster)', 'Outbox: waiting and dead letters', 'Readiness per instance', 'Mode', 'Change freeze', 'Audit chain']) {
      expect(titles).toContain(title);
    }
    expect(d.templating.list.map((v) => v.name)).toEqual(expect.arrayContaining(['job', 'instance']));
  });

  it('reads only metrics the kernel declares', () => {
    for (const expr of dashboardExpressions(d)) {
      for (const name of metricNames(expr)) expect(declared.has(name), `${name} in ${expr}`).toBe(true);
    }
  });
});
