import { spawnSync } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { GAUGES_NAMED_AS_COUNTERS, UNMATCHED_ROUTE } from './hooks.js';
import { SNAPSHOT_JOB } from './jobs.js';

/** `promtool` is on PATH (Debian's `prometheus` package; .ci/run installs it). */
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

const get = (url: string, headers: Record<string, string> = {}, app: FastifyInstance = t.app) => t.inject({ method: 'GET', url, headers }, app);

describe('liveness and readiness', () => {
  it('answers /live without the database', async () => {
    const res = await get('/live');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('answers /ready with 200 and lists each check only when verbose', async () => {
    const plain = await get('/ready');
    expect(plain.statusCode).toBe(200);
    expect(plain.json()).toEqual({ status: 'ok' });

    for (const url of ['/ready?verbose', '/ready?verbose=true', '/ready?verbose=1']) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(200);
      const checks = res.json().checks as Array<{ name: string; ok: boolean; latencyMs?: number; message: string }>;
      expect(checks.map((c) => c.name)).toEqual(['database', 'migrations', 'state-listener', 'draining', 'pressure']);
      expect(checks.every((c) => c.ok)).toBe(true);
      expect(checks[0]!.latencyMs).toEqual(expect.any(Number));
      expect(checks[1]!.message).toMatch(/^(\d+) of \1 applied$/);
    }
    expect((await get('/ready?verbose=false')).json()).toEqual({ status: 'ok' });
  });

  it('fails /ready with a 503 problem naming the draining check while shutting down', async () => {
    t.app.lifecycle.draining = true;
    try {
      const res = await get('/ready');
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.headers.connection).toBe('close');
      const body = res.json();
      expect(body).toMatchObject({ type: '/problems/service-unavailable', status: 503, instance: '/ready' });
      expect(body.detail).toContain('draining');
      expect(body.detail).not.toContain('database');
      expect(body.checks).toBeUndefined();

      const verbose = (await get('/ready?verbose')).json();
      expect(verbose.checks).toContainEqual(expect.objectContaining({ name: 'draining', ok: false }));
      expect(verbose.checks).toContainEqual(expect.objectContaining({ name: 'database', ok: true }));
      // Liveness does not depend on draining.
      expect((await get('/live')).statusCode).toBe(200);
    } finally {
      t.app.lifecycle.draining = false;
    }
    expect((await get('/ready')).statusCode).toBe(200);
  });

  it('rejects unknown /ready query fields and bad verbose values', async () => {
    const unknown = await get('/ready?bogus=1');
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/bogus' }));
    expect((await get('/ready?verbose=yes')).statusCode).toBe(400);
  });
});

/** One line of the Prometheus text format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/). */
const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const VALUE = '(?:[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|NaN|[+-]Inf)';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(?:${LABEL}(?:,${LABEL})*,?)?\\})? ${VALUE}(?: -?\\d+)?$`);
const HELP = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

function parseExposition(text: string): { types: Map<string, string>; samples: string[] } {
  const types = new Map<string, string>();
  const samples: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = TYPE.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('#')) {
      expect(line, 'comment line').toMatch(HELP);
      continue;
    }
    const sample = SAMPLE.exec(line);
    expect(sample, `not a valid sample line: ${line}`).not.toBeNull();
    const name = sample![1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(family), `sample ${name} has no # TYPE before it`).toBe(true);
    samples.push(line);
  }
  return { types, samples };
}

describe('/metrics', () => {
  it('serves valid Prometheus text with route templates, never raw paths', async () => {
    await get('/problems/route-not-found');
    await get('/no-such-path/12345');
    const res = await get('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const { types, samples } = parseExposition(res.body);

    expect(types.get('http_request_duration_seconds')).toBe('histogram');
    expect(types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(types.get('nodejs_eventloop_lag_p99_seconds')).toBe('gauge');
    // Counters registered by other packs and the kernel share the registry.
    expect(types.get('valhalla_server_errors_total')).toBe('counter');
    expect(types.get('valhalla_jobs_total')).toBe('counter');
    expect(types.get('valhalla_load_shed_total')).toBe('counter');

    const durations = samples.filter((l) => l.startsWith('http_request_duration_seconds_count{'));
    expect(durations).toContainEqual(expect.stringMatching(/method="GET",route="\/problems\/:kind",status_code="200"/));
    expect(durations).toContainEqual(expect.stringMatching(new RegExp(`route="${UNMATCHED_ROUTE}",status_code="404"`)));
    expect(res.body).not.toContain('route-not-found"');
    expect(res.body).not.toContain('/no-such-path');
    // Prometheus adds `instance` (the scrape target) itself: ours would become `exported_instance`.
    expect(samples.filter((l) => /[{,]instance="/.test(l))).toEqual([]);
    expect(types.get('valhalla_build_info')).toBe('gauge');
    expect(samples.filter((l) => l.startsWith('valhalla_build_info'))).toEqual([
      `valhalla_build_info{version="${t.app.lifecycle.version}",instance_id="${t.app.lifecycle.instanceId}",node_version="${process.version}",driver="${t.app.database.driver}"} 1`,
    ]);
    // Gauges named like counters are left out; their per-type siblings stay.
    for (const name of GAUGES_NAMED_AS_COUNTERS) expect(types.has(name), name).toBe(false);
    expect(types.get('nodejs_active_handles')).toBe('gauge');
  });

  it.skipIf(!hasPromtool)('passes `promtool check metrics` without a warning', async () => {
    await get('/live');
    const res = await get('/metrics');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: res.body, encoding: 'utf8' });
    expect({ status: check.status, output: `${check.stdout}${check.stderr}`.trim() }).toEqual({ status: 0, output: '' });
  });

  it('needs the bearer METRICS_TOKEN when one is set', async () => {
    const token = 'metrics-token-0123456789abcdef';
    const app = await t.another({ METRICS_TOKEN: token });
    const missing = await get('/metrics', {}, app);
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(missing.json().type).toBe('/problems/unauthorized');
    expect(missing.body).not.toContain(token);

    expect((await get('/metrics', { authorization: `Bearer ${token}x` }, app)).statusCode).toBe(401);
    expect((await get('/metrics', { authorization: `Bearer ${token.slice(1)}` }, app)).statusCode).toBe(401);
    expect((await get('/metrics', { authorization: token }, app)).statusCode).toBe(401);
    expect((await get('/metrics', { authorization: `Basic ${token}` }, app)).statusCode).toBe(401);

    const ok = await get('/metrics', { authorization: `Bearer ${token}` }, app);
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain('# TYPE http_request_duration_seconds histogram');
    expect((await get('/metrics', { authorization: `bearer ${token}` }, app)).statusCode).toBe(200);
    // The token guards /metrics only.
    expect((await get('/live', {}, app)).statusCode).toBe(200);
    expect((await get('/ready', {}, app)).statusCode).toBe(200);
  });
});

describe('/system/health', () => {
  it('says what runs here from memory, and rejects query fields', async () => {
    const res = await t.inject({ method: 'GET', url: '/system/info' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      name: 'valhalla-kernel',
      instanceId: t.app.lifecycle.instanceId,
      driver: t.app.database.driver,
      packs: expect.arrayContaining([expect.objectContaining({ name: 'health', code: 'TX' })]),
    });
    const bad = await t.inject({ method: 'GET', url: '/system/info?verbose=1' });
    expect(bad.statusCode).toBe(400);
  });

  it('reports components, version, uptime and packs', async () => {
    const res = await get('/system/health');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      status: 'ok',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      instanceId: t.app.lifecycle.instanceId,
      startedAt: t.app.lifecycle.startedAt.toISOString(),
      uptimeSeconds: expect.any(Number),
      driver: t.app.database.driver,
      draining: false,
    });
    const { components } = body;
    expect(components.database).toMatchObject({ ok: true, latencyMs: expect.any(Number) });
    expect(components.migrations.ok).toBe(true);
    expect(components.migrations.applied).toBe(components.migrations.expected);
    expect(components.migrations.expected).toBeGreaterThan(0);
    expect(components.pressure).toMatchObject({ ok: true, heapUsedBytes: expect.any(Number), rssBytes: expect.any(Number) });
    expect(components.jobs).toMatchObject({ running: false, periodic: expect.arrayContaining([SNAPSHOT_JOB]) });
    expect(components.stateCache.entries).toBe(components.stateCache.names.length);
    expect(components.batchWriters.writers).toContainEqual({ name: 'error_events', pending: expect.any(Number) });
    expect(body.packs).toContainEqual({ name: 'health', code: 'TX', description: expect.any(String) });
    expect(body.packs).toContainEqual(expect.objectContaining({ name: 'problem-details', code: 'TU' }));
  });

  it('says degraded while draining, and rejects query fields', async () => {
    t.app.lifecycle.draining = true;
    try {
      const res = await get('/system/health');
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ status: 'degraded', draining: true });
    } finally {
      t.app.lifecycle.draining = false;
    }
    const bad = await get('/system/health?verbose=1');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/verbose' }));
  });
});

describe('metrics snapshots', () => {
  it('records one snapshot per instance through the periodic job and lists them newest first', async () => {
    const b = await t.another();
    const a = t.app;
    await get('/live');
    expect(await a.jobs.runDuePeriodic()).toContain(SNAPSHOT_JOB);
    // Each instance snapshots itself: the other instance's job is not blocked by the first one's.
    expect(await b.jobs.runDuePeriodic()).toContain(SNAPSHOT_JOB);
    // Within the interval the job does not run again.
    expect(await a.jobs.runDuePeriodic()).not.toContain(SNAPSHOT_JOB);

    const all = await get('/system/metrics/snapshots');
    expect(all.statusCode).toBe(200);
    const items = all.json().items as Array<{ id: number; takenAt: string; instanceId: string; figures: Record<string, number> }>;
    expect(items.map((i) => i.instanceId)).toEqual([b.lifecycle.instanceId, a.lifecycle.instanceId]);
    expect(items[0]!.id).toBeGreaterThan(items[1]!.id);
    const mine = items[1]!;
    expect(mine.figures).toMatchObject({
      requests: expect.any(Number),
      serverErrors: expect.any(Number),
      rssBytes: expect.any(Number),
      heapUsedBytes: expect.any(Number),
      eventLoopDelayP99Ms: expect.any(Number),
      batchPending: expect.any(Number),
    });
    expect(mine.figures.requests).toBeGreaterThan(0);
    expect(mine.figures.rssBytes).toBeGreaterThan(0);

    const filtered = (await get(`/system/metrics/snapshots?instanceId=${encodeURIComponent(a.lifecycle.instanceId)}`)).json();
    expect(filtered.items.map((i: { id: number }) => i.id)).toEqual([mine.id]);

    const page1 = (await get('/system/metrics/snapshots?limit=1')).json();
    expect(page1.items).toHaveLength(1);
    expect(page1.nextCursor).toEqual(expect.any(String));
    const page2 = (await get(`/system/metrics/snapshots?limit=1&cursor=${page1.nextCursor}`)).json();
    expect(page2.items.map((i: { id: number }) => i.id)).toEqual([mine.id]);
    expect(page2.nextCursor).toBeNull();

    const since = encodeURIComponent(new Date(Date.now() + 60_000).toISOString());
    expect((await get(`/system/metrics/snapshots?since=${since}`)).json().items).toEqual([]);
    const until = encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString());
    expect((await get(`/system/metrics/snapshots?until=${until}`)).json().items).toEqual([]);
    // takenAt has microseconds in the database and milliseconds in JSON: widen `until` by 1 ms.
    const newest = new Date(Date.parse(items[0]!.takenAt) + 1).toISOString();
    const window = `since=${encodeURIComponent(mine.takenAt)}&until=${encodeURIComponent(newest)}`;
    expect((await get(`/system/metrics/snapshots?${window}`)).json().items).toHaveLength(2);
  });

  it('answers bad list queries with 400 problems', async () => {
    const cases: Array<[string, string]> = [
      ['since=yesterday', '#/since'],
      ['until=2024-13-40T00:00:00Z', '#/until'],
      ['bogus=1', '#/bogus'],
      ['limit=0', '#/limit'],
      ['limit=501', '#/limit'],
      ['instanceId=', '#/instanceId'],
    ];
    for (const [query, pointer] of cases) {
      const res = await get(`/system/metrics/snapshots?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json().errors, query).toContainEqual(expect.objectContaining({ in: 'querystring', pointer }));
    }
    const cursor = await get('/system/metrics/snapshots?cursor=abc');
    expect(cursor.statusCode).toBe(400);
    expect(cursor.json().type).toBe('/problems/invalid-cursor');
  });
});

describe('load shedding', () => {
  it('answers 503 under-pressure with Retry-After, while /live, /ready and /metrics keep answering', async () => {
    // Any heap is above one byte: the instance is under pressure from its first sample on.
    const app = await t.another({ PRESSURE_MAX_HEAP_BYTES: 1, PRESSURE_RETRY_AFTER_SECONDS: 7 });
    await vi.waitFor(() => expect(app.isUnderPressure()).toBe(true), { timeout: 10_000, interval: 50 });

    const shed = await get('/system/health', {}, app);
    expect(shed.statusCode).toBe(503);
    expect(shed.headers['retry-after']).toBe('7');
    expect(shed.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(shed.json()).toMatchObject({ type: '/problems/under-pressure', status: 503, instance: '/system/health' });
    expect(shed.json().detail).toContain('PRESSURE_MAX_HEAP_BYTES');

    expect((await get('/live', {}, app)).statusCode).toBe(200);
    const ready = await get('/ready', {}, app);
    expect(ready.statusCode).toBe(503);
    expect(ready.json().type).toBe('/problems/service-unavailable');
    expect(ready.json().detail).toMatch(/pressure \(shedding load/);
    const metrics = await get('/metrics', {}, app);
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toMatch(/valhalla_load_shed_total\{reason="heapUsedBytes"[^}]*\} [1-9]/);
    // A shed request is answered directly, not through the error handler: no server error recorded.
    expect(metrics.body).not.toContain('kind="under-pressure"');
  });

  it('sheds on event-loop delay once past start-up', async () => {
    const app = await t.another({ PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 5 });
    // Block the loop for half of each sampling interval until a sample past the start-up grace sees it.
    await vi.waitFor(
      async () => {
        const until = performance.now() + 500;
        while (performance.now() < until);
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect((await get('/system/health', {}, app)).statusCode).toBe(503);
      },
      { timeout: 20_000, interval: 10 },
    );
    const shed = await get('/system/health', {}, app);
    expect(shed.json().detail).toContain('PRESSURE_MAX_EVENT_LOOP_DELAY_MS');
    expect((await get('/live', {}, app)).statusCode).toBe(200);
    expect((await get('/metrics', {}, app)).body).toMatch(/valhalla_load_shed_total\{reason="eventLoopDelay"[^}]*\} [1-9]/);
  });
});
