/**
 * The observability kit in deploy/observability, read the same way by its test and by
 * scripts/prometheus-scrape-check.ts: the alert rules (YAML), the Grafana dashboard (JSON), and
 * the metric names a PromQL expression reads.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const kitDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'deploy', 'observability');
export const rulesFile = path.join(kitDir, 'prometheus', 'valhalla-alerts.yml');
export const rulesTestFile = path.join(kitDir, 'prometheus', 'valhalla-alerts.test.yml');
export const exampleConfigFile = path.join(kitDir, 'prometheus', 'prometheus.example.yml');
export const dashboardFile = path.join(kitDir, 'grafana', 'valhalla-dashboard.json');

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function alertRules(file = rulesFile): AlertRule[] {
  const doc = parse(readFileSync(file, 'utf8')) as { groups: Array<{ name: string; rules: AlertRule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Array<{ expr: string; refId: string; datasource?: { type: string; uid: string } }>;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
}

export const dashboard = (file = dashboardFile): Dashboard => JSON.parse(readFileSync(file, 'utf8')) as Dashboard;

/** The PromQL expressions of every panel of the dashboard. */
export const dashboardExpressions = (d: Dashboard): string[] => d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names an expression reads: identifiers that are neither functions, aggregation
 * modifiers, label names in `by (...)`/`on (...)`/matchers, nor Grafana variables. Good enough
 * for the expressions of this kit (no `{__name__=...}` selectors).
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // string literals
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // range and subquery durations
    .replace(/\$\{?\w+\}?/g, '') // Grafana variables
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const name = m[0];
    const after = stripped.slice(m.index + name.length);
    if (/^\s*\(/.test(after)) continue; // a function or aggregation
    if (KEYWORDS.has(name.toLowerCase())) continue;
    if (/^\d/.test(name) || /^[0-9.]+[smhdwy]?$/.test(name)) continue;
    names.add(name);
  }
  return [...names];
}

/**
 * Every series name a Prometheus text exposition declares, samples or not (`# TYPE` lines), with
 * the `_bucket`/`_count`/`_sum` series of histograms and summaries.
 */
export function exposedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram') for (const suffix of ['_bucket', '_count', '_sum']) names.add(`${name}${suffix}`);
    if (type === 'summary') for (const suffix of ['_count', '_sum']) names.add(`${name}${suffix}`);
  }
  return names;
}

/** Series Prometheus itself adds for every scrape target. */
export const SCRAPE_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);
