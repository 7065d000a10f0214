import { and, eq } from 'drizzle-orm';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { authHeader, createTestApp, type TestApp } from '../../test/helpers/app.js';
import { allPacks } from '../index.js';
import type { SmokeFailure } from './index.js';
import { SMOKE_RUN_JOB } from './jobs.js';
import { describeFetchError, mapWithConcurrency, randomTraceparent, runSmokeChecks, type SmokeCheck } from './smoke-runner.js';
import { smokeRuns, smokeTestResults } from './table.js';

const ROOT = '/system/deployment';
const PROFILES = `${ROOT}/profiles`;
const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * The smoke target: a real HTTP server on 127.0.0.1 with one endpoint per kind of answer. It
 * records each request's headers and the most requests it ever had in flight at once.
 */
interface SmokeTarget {
  baseUrl: string;
  /** A port nothing listens on: connection refused. */
  closedUrl: string;
  seen: Array<{ path: string; method: string; headers: IncomingHttpHeaders }>;
  maxInFlight: number;
  resetCounters(): void;
  close(): Promise<void>;
}

const SLOW_MS = 400;

async function startSmokeTarget(): Promise<SmokeTarget> {
  let inFlight = 0;
  const state = { maxInFlight: 0 };
  const seen: SmokeTarget['seen'] = [];
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    seen.push({ path, method: req.method ?? '', headers: req.headers });
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    res.on('close', () => inFlight--);
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'text/plain', ...headers });
      res.end(body);
    };
    if (path === '/good') return send(200, 'all ok here');
    if (path === '/status') return send(500, 'ok but broken');
    if (path === '/body') return send(200, 'something else');
    if (path === '/slow') return void setTimeout(() => send(200, 'ok, eventually'), SLOW_MS);
    if (path === '/hang') return; // never answers; the check's timeout ends it
    if (path === '/redirect') return send(301, '', { location: '/good' });
    if (path === '/big') {
      // 1 MiB of filler, the marker only at the end: past the 64 KiB the runner reads.
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end('x'.repeat(1024 * 1024) + 'MARKER');
    }
    if (path.startsWith('/held')) return void setTimeout(() => send(200, 'ok'), 150);
    return send(404, 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    closedUrl: `http://127.0.0.1:${closedPort}`,
    seen,
    get maxInFlight() {
      return state.maxInFlight;
    },
    resetCounters() {
      state.maxInFlight = 0;
      seen.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const check = (name: string, path: string, extra: Partial<SmokeCheck> = {}): SmokeCheck => ({
  name,
  method: 'GET',
  path,
  expectedStatus: 200,
  maxLatencyMs: 2000,
  timeoutMs: 3000,
  ...extra,
});

let t: TestApp;
let target: SmokeTarget;
beforeAll(async () => {
  [t, target] = await Promise.all([createTestApp(), startSmokeTarget()]);
});
afterAll(async () => {
  await t?.close();
  await target?.close();
});

let seq = 0;
const uniqueName = (prefix: string) => `${prefix}-${++seq}`;

const createProfile = (body: Record<string, unknown>) => t.inject({ method: 'POST', url: PROFILES, payload: body });

async function profileWith(checks: unknown[], extra: Record<string, unknown> = {}): Promise<{ id: number; name: string }> {
  const res = await createProfile({ name: uniqueName('p'), environment: 'staging', baseUrl: target.baseUrl, smokeChecks: checks, ...extra });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

const validBody = (overrides: Record<string, unknown> = {}) => ({
  name: uniqueName('valid'),
  environment: 'production',
  baseUrl: 'https://shop.example.com/app/',
  smokeChecks: [{ name: 'home', path: '/' }],
  ...overrides,
});

describe('smoke runner (no database)', () => {
  it('judges each kind of answer and sends traceparent and user-agent', async () => {
    target.resetCounters();
    const results = await runSmokeChecks({
      baseUrl: target.baseUrl,
      concurrency: 3,
      userAgent: 'valhalla-smoke/test',
      checks: [
        check('good', '/good', { bodyContains: 'ok' }),
        check('status', '/status'),
        check('body', '/body', { bodyContains: 'ok' }),
        check('slow', '/slow', { maxLatencyMs: 100 }),
        check('hang', '/hang', { timeoutMs: 300, maxLatencyMs: 300 }),
        check('redirect', '/redirect', { expectedStatus: 301 }),
        check('big', '/big', { bodyContains: 'MARKER' }),
        check('head', '/good', { method: 'HEAD' }),
      ],
    });
    const byName = Object.fromEntries(results.map((r) => [r.name, r]));
    expect(results.map((r) => r.name)).toEqual(['good', 'status', 'body', 'slow', 'hang', 'redirect', 'big', 'head']);
    expect(byName.good).toMatchObject({ passed: true, statusCode: 200, error: null, url: `${target.baseUrl}/good` });
    expect(byName.status).toMatchObject({ passed: false, statusCode: 500, error: 'expected status 200, got 500' });
    expect(byName.body).toMatchObject({ passed: false, statusCode: 200, error: 'body does not contain "ok"' });
    expect(byName.slow!.passed).toBe(false);
    expect(byName.slow!.latencyMs).toBeGreaterThanOrEqual(SLOW_MS - 5);
    expect(byName.slow!.error).toMatch(/^latency \d+ ms above 100 ms$/);
    expect(byName.hang).toMatchObject({ passed: false, statusCode: null, error: 'timeout after 300 ms' });
    // Redirects are not followed: the 301 itself is what the check sees.
    expect(byName.redirect).toMatchObject({ passed: true, statusCode: 301 });
    expect(target.seen.filter((s) => s.path === '/good').length).toBe(2); // the good check and the HEAD, not the redirect
    // Only the first 64 KiB are read: a marker past them is not found.
    expect(byName.big).toMatchObject({ passed: false, statusCode: 200, error: 'body does not contain "MARKER"' });
    expect(byName.head).toMatchObject({ passed: true, statusCode: 200 });

    for (const s of target.seen) {
      expect(s.headers.traceparent, s.path).toMatch(TRACEPARENT);
      expect(s.headers['user-agent']).toBe('valhalla-smoke/test');
    }
  });

  it('reports connection refused and unknown hosts as short sentences', async () => {
    const [refused] = await runSmokeChecks({ baseUrl: target.closedUrl, concurrency: 1, userAgent: 'x', checks: [check('refused', '/good', { timeoutMs: 1000 })] });
    expect(refused).toMatchObject({ passed: false, statusCode: null, error: 'connection refused' });

    expect(describeFetchError(new TypeError('fetch failed', { cause: Object.assign(new Error('getaddrinfo ENOTFOUND db.internal'), { code: 'ENOTFOUND' }) }))).toBe('DNS lookup failed');
    expect(describeFetchError(new TypeError('fetch failed', { cause: new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]) }))).toBe('connection refused');
    expect(describeFetchError(new TypeError('fetch failed', { cause: Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' }) }))).toBe('TLS error (CERT_HAS_EXPIRED)');
    // Messages are never repeated: they can carry addresses, paths or secrets.
    expect(describeFetchError(new Error('secret=hunter2 at /srv/app.js:12'))).toBe('request failed');
    expect(describeFetchError(Object.assign(new Error('x'), { code: 'not a code; drop table' }))).toBe('request failed');
  });

  it('keeps at most `concurrency` requests in flight', async () => {
    target.resetCounters();
    const checks = Array.from({ length: 6 }, (_, i) => check(`held-${i}`, `/held/${i}`));
    const results = await runSmokeChecks({ baseUrl: target.baseUrl, concurrency: 2, userAgent: 'x', checks });
    expect(results.every((r) => r.passed)).toBe(true);
    expect(target.seen.length).toBe(6);
    expect(target.maxInFlight).toBe(2);

    let active = 0;
    let most = 0;
    const out = await mapWithConcurrency([1, 2, 3, 4, 5], 3, async (n) => {
      most = Math.max(most, ++active);
      await new Promise((r) => setTimeout(r, 10));
      active--;
      return n * 2;
    });
    expect(out).toEqual([2, 4, 6, 8, 10]);
    expect(most).toBe(3);
  });

  it('ends checks in flight as aborted when its signal fires', async () => {
    const controller = new AbortController();
    const pending = runSmokeChecks({ baseUrl: target.baseUrl, concurrency: 1, userAgent: 'x', signal: controller.signal, checks: [check('hang', '/hang', { timeoutMs: 5000, maxLatencyMs: 5000 })] });
    setTimeout(() => controller.abort(), 50);
    expect((await pending)[0]).toMatchObject({ passed: false, statusCode: null, error: 'aborted' });
  });

  it('makes valid random traceparents', () => {
    expect(randomTraceparent()).toMatch(TRACEPARENT);
  });
});

describe('deployment profiles', () => {
  it('creates, reads, changes and deletes a profile, with defaults filled and the URL normalised', async () => {
    const res = await createProfile(validBody({ name: 'shop-prod', baseUrl: 'HTTPS://Shop.Example.com/app/' }));
    expect(res.statusCode, res.body).toBe(201);
    const profile = res.json();
    expect(res.headers.location).toBe(`${PROFILES}/${profile.id}`);
    expect(profile).toMatchObject({
      name: 'shop-prod',
      environment: 'production',
      baseUrl: 'https://shop.example.com/app',
      currentVersion: null,
      lastDeployedAt: null,
      concurrency: 4,
      smokeChecks: [{ name: 'home', method: 'GET', path: '/', expectedStatus: 200, maxLatencyMs: 1000, timeoutMs: 5000 }],
    });

    const read = await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}` });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual(profile);

    const patched = await t.inject({
      method: 'PATCH',
      url: `${PROFILES}/${profile.id}`,
      payload: { concurrency: 2, smokeChecks: [{ name: 'api', method: 'HEAD', path: '/api/health?deep=1', expectedStatus: 204 }] },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject({ id: profile.id, name: 'shop-prod', concurrency: 2, smokeChecks: [{ name: 'api', method: 'HEAD', expectedStatus: 204 }] });
    // A partial change leaves the other fields alone.
    const renamed = await t.inject({ method: 'PATCH', url: `${PROFILES}/${profile.id}`, payload: { name: 'shop-production' } });
    expect(renamed.json()).toMatchObject({ name: 'shop-production', concurrency: 2, baseUrl: 'https://shop.example.com/app', smokeChecks: patched.json().smokeChecks });

    const deleted = await t.inject({ method: 'DELETE', url: `${PROFILES}/${profile.id}` });
    expect(deleted.statusCode).toBe(204);
    expect((await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}` })).statusCode).toBe(404);

    const ops = await t.app.db
      .select()
      .from(adminOperations)
      .where(and(eq(adminOperations.targetType, 'deployment-profile'), eq(adminOperations.targetId, String(profile.id))))
      .orderBy(adminOperations.id);
    expect(ops.map((o) => o.operation)).toEqual(['deployment-profile.create', 'deployment-profile.update', 'deployment-profile.update', 'deployment-profile.delete']);
  });

  it('rejects bad base URLs with 400 naming the field', async () => {
    const bad = [
      'file:///etc/passwd',
      'javascript:alert(1)',
      'ftp://example.com',
      'https://user:secret@example.com',
      'https://example.com/?token=abc',
      'https://example.com/#x',
      'http://',
      `https://example.com/${'a'.repeat(2100)}`,
      'example.com',
    ];
    for (const baseUrl of bad) {
      const res = await createProfile(validBody({ baseUrl }));
      expect(res.statusCode, baseUrl).toBe(400);
      expect(res.json().type).toBe('/problems/validation-failed');
      expect(res.json().errors, baseUrl).toContainEqual(expect.objectContaining({ pointer: '#/baseUrl' }));
      // The refused URL's credentials are not echoed back.
      expect(res.body).not.toContain('secret@');
    }
  });

  it('rejects bad checks: none, too many, unknown fields, duplicates and contradictions', async () => {
    const checks = (smokeChecks: unknown) => createProfile(validBody({ smokeChecks }));
    const pointerOf = async (res: Promise<{ statusCode: number; json(): { errors?: Array<{ pointer: string }> } }>) => {
      const r = await res;
      expect(r.statusCode).toBe(400);
      return (r.json().errors ?? []).map((e) => e.pointer);
    };
    expect(await pointerOf(checks([]))).toContain('#/smokeChecks');
    expect(await pointerOf(checks(Array.from({ length: 21 }, (_, i) => ({ name: `c${i}`, path: '/' }))))).toContain('#/smokeChecks');
    expect(await pointerOf(checks([{ name: 'a', path: '/', colour: 'red' }]))).toContain('#/smokeChecks/0/colour');
    expect(await pointerOf(checks([{ name: 'a', path: '/', method: 'DELETE' }]))).toContain('#/smokeChecks/0/method');
    expect(await pointerOf(checks([{ name: 'a', path: 'no-slash' }]))).toContain('#/smokeChecks/0/path');
    expect(await pointerOf(checks([{ name: 'a', path: '/has space' }]))).toContain('#/smokeChecks/0/path');
    expect(await pointerOf(checks([{ name: 'a', path: '/', expectedStatus: 600 }]))).toContain('#/smokeChecks/0/expectedStatus');
    expect(await pointerOf(checks([{ name: 'a', path: '/', timeoutMs: 10 }]))).toContain('#/smokeChecks/0/timeoutMs');
    expect(await pointerOf(checks([{ name: 'a', path: '/', timeoutMs: 60_000 }]))).toContain('#/smokeChecks/0/timeoutMs');
    expect(await pointerOf(checks([{ name: 'a', path: '/' }, { name: 'a', path: '/x' }]))).toContain('#/smokeChecks/1/name');
    expect(await pointerOf(checks([{ name: 'a', path: '/', method: 'HEAD', bodyContains: 'ok' }]))).toContain('#/smokeChecks/0/bodyContains');
    expect(await pointerOf(checks([{ name: 'a', path: '/', maxLatencyMs: 900, timeoutMs: 500 }]))).toContain('#/smokeChecks/0/maxLatencyMs');

    for (const [field, value] of [['concurrency', 0], ['concurrency', 11], ['owner', 'me'], ['environment', 'Prod Env'], ['name', 'n'.repeat(101)], ['currentVersion', '1.0']] as const) {
      const res = await createProfile(validBody({ [field]: value }));
      expect(res.statusCode, field).toBe(400);
    }
    expect((await createProfile({ name: 'x', environment: 'p', baseUrl: 'https://a.example' })).json().errors).toContainEqual(
      expect.objectContaining({ pointer: '#/smokeChecks', message: 'is required' }),
    );
  });

  it('answers 409 for a duplicate name, on create and on rename', async () => {
    expect((await createProfile(validBody({ name: 'dup-a' }))).statusCode).toBe(201);
    const b = (await createProfile(validBody({ name: 'dup-b' }))).json();
    const again = await createProfile(validBody({ name: 'dup-a' }));
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ type: '/problems/conflict', name: 'dup-a' });
    const rename = await t.inject({ method: 'PATCH', url: `${PROFILES}/${b.id}`, payload: { name: 'dup-a' } });
    expect(rename.statusCode).toBe(409);
  });

  it('answers 404 for an unknown profile on every profile route, and 400 for bad ids', async () => {
    const routes: Array<[string, string, unknown?]> = [
      ['GET', `${PROFILES}/999999`],
      ['PATCH', `${PROFILES}/999999`, { concurrency: 2 }],
      ['DELETE', `${PROFILES}/999999`],
      ['POST', `${PROFILES}/999999/deployments`, { version: '1.0.0' }],
      ['GET', `${PROFILES}/999999/deployments`],
      ['GET', `${PROFILES}/999999/deployments/1`],
      ['POST', `${PROFILES}/999999/smoke-runs`],
      ['GET', `${PROFILES}/999999/smoke-runs`],
      ['GET', `${ROOT}/smoke-runs/999999`],
    ];
    for (const [method, url, payload] of routes) {
      const res = await t.inject({ method: method as 'GET', url, payload: payload as object | undefined });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().type).toBe('/problems/resource-not-found');
    }
    for (const id of ['abc', '0', '-1', '1.5']) {
      expect((await t.inject({ method: 'GET', url: `${PROFILES}/${id}` })).statusCode, id).toBe(400);
      expect((await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${id}` })).statusCode, id).toBe(400);
    }
    expect((await t.inject({ method: 'PATCH', url: `${PROFILES}/1`, payload: {} })).statusCode).toBe(400);
  });

  it('lists profiles by environment with an opaque cursor', async () => {
    const names = ['list-a', 'list-b', 'list-c'];
    for (const name of names) expect((await createProfile(validBody({ name, environment: 'listing' }))).statusCode).toBe(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await t.inject({ method: 'GET', url: `${PROFILES}?environment=listing&limit=2${cursor ? `&cursor=${cursor}` : ''}` });
      expect(res.statusCode).toBe(200);
      seen.push(...res.json().items.map((p: { name: string }) => p.name));
      cursor = res.json().nextCursor;
      pages++;
    } while (cursor && pages < 5);
    expect(seen).toEqual(names);
    expect(pages).toBe(2);
    expect((await t.inject({ method: 'GET', url: `${PROFILES}?cursor=bogus` })).json().type).toBe('/problems/invalid-cursor');
    expect((await t.inject({ method: 'GET', url: `${PROFILES}?limit=501` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${PROFILES}?sort=name` })).statusCode).toBe(400);
  });
});

describe('deployments', () => {
  it('records deployments, moves the current version and keeps the history newest first', async () => {
    const profile = await profileWith([check('good', '/good')]);
    const url = `${PROFILES}/${profile.id}/deployments`;
    const versions = ['1.0.0', '1.1.0', '1.2.0-rc.1', '1.2.0'];
    const recorded = [];
    for (const [i, version] of versions.entries()) {
      const res = await t.inject({ method: 'POST', url, payload: { version, commitSha: i === 1 ? 'ABCDEF0123' : 'abcdef0', notes: `deploy ${i}` } });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.headers.location).toBe(`${url}/${res.json().id}`);
      recorded.push(res.json());
    }
    expect(recorded[1]).toMatchObject({ version: '1.1.0', commitSha: 'abcdef0123', environment: 'staging', deployedBy: expect.any(String), smokeRunId: null });

    const current = (await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}` })).json();
    expect(current.currentVersion).toBe('1.2.0');
    expect(current.lastDeployedAt).toBe(recorded[3].createdAt);

    const page1 = (await t.inject({ method: 'GET', url: `${url}?limit=3` })).json();
    expect(page1.items.map((d: { version: string }) => d.version)).toEqual(['1.2.0', '1.2.0-rc.1', '1.1.0']);
    const page2 = (await t.inject({ method: 'GET', url: `${url}?limit=3&cursor=${page1.nextCursor}` })).json();
    expect(page2).toEqual({ items: [expect.objectContaining({ version: '1.0.0' })], nextCursor: null });

    const one = await t.inject({ method: 'GET', url: `${url}/${recorded[0].id}` });
    expect(one.json()).toMatchObject({ id: recorded[0].id, version: '1.0.0', notes: 'deploy 0' });
    // A deployment is found only under its own profile.
    const other = await profileWith([check('good', '/good')]);
    expect((await t.inject({ method: 'GET', url: `${PROFILES}/${other.id}/deployments/${recorded[0].id}` })).statusCode).toBe(404);

    const audit = await t.app.db.select().from(adminOperations).where(and(eq(adminOperations.operation, 'deployment.record'), eq(adminOperations.targetId, String(profile.id))));
    expect(audit).toHaveLength(4);
    expect(audit[3]!.before).toEqual({ currentVersion: '1.2.0-rc.1' });
  });

  it('rejects bad commit hashes, versions, unknown fields and the wrong environment', async () => {
    const profile = await profileWith([check('good', '/good')]);
    const url = `${PROFILES}/${profile.id}/deployments`;
    const post = (payload: Record<string, unknown>) => t.inject({ method: 'POST', url, payload });
    for (const commitSha of ['abc12', 'xyz1234', 'a'.repeat(41), 'abcdef0 ', '']) {
      const res = await post({ version: '1.0.0', commitSha });
      expect(res.statusCode, commitSha).toBe(400);
      expect(res.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/commitSha' }));
    }
    expect((await post({ version: '' })).statusCode).toBe(400);
    expect((await post({ version: 'has space' })).statusCode).toBe(400);
    expect((await post({ version: 'v'.repeat(101) })).statusCode).toBe(400);
    expect((await post({ commitSha: 'abcdef0' })).statusCode).toBe(400);
    expect((await post({ version: '1.0.0', deployedBy: 'mallory' })).json().errors).toContainEqual(expect.objectContaining({ pointer: '#/deployedBy' }));
    expect((await post({ version: '1.0.0', notes: 'n'.repeat(2001) })).statusCode).toBe(400);
    expect((await post({ version: '1.0.0', runSmoke: 'yes' })).statusCode).toBe(400);

    const wrongEnv = await post({ version: '1.0.0', environment: 'production' });
    expect(wrongEnv.statusCode).toBe(422);
    expect(wrongEnv.json()).toMatchObject({ type: '/problems/unprocessable', profileEnvironment: 'staging' });
    expect((await post({ version: '1.0.0', environment: 'staging' })).statusCode).toBe(201);

    // Nothing but the one good deployment was recorded.
    expect((await t.inject({ method: 'GET', url })).json().items).toHaveLength(1);
  });
});

describe('smoke runs', () => {
  const failures: SmokeFailure[] = [];
  beforeAll(() => {
    t.app.deployments.onSmokeFailed((f) => {
      failures.push(f);
    });
  });

  it('runs every check for real with ?wait=true and stores a result per check', async () => {
    target.resetCounters();
    const profile = await profileWith(
      [
        check('good', '/good', { bodyContains: 'ok', maxLatencyMs: 2000 }),
        check('status-mismatch', '/status'),
        check('body-mismatch', '/body', { bodyContains: 'ok' }),
        check('slow', '/slow', { maxLatencyMs: 100, timeoutMs: 2000 }),
        check('hanging', '/hang', { timeoutMs: 300, maxLatencyMs: 300 }),
      ],
      { concurrency: 5 },
    );
    const refusedProfile = await profileWith([check('refused', '/good', { timeoutMs: 800, maxLatencyMs: 800 })], { baseUrl: target.closedUrl });

    const res = await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs?wait=true` });
    expect(res.statusCode, res.body).toBe(201);
    const run = res.json();
    expect(res.headers.location).toBe(`${ROOT}/smoke-runs/${run.id}`);
    expect(run).toMatchObject({
      profileId: profile.id,
      deploymentId: null,
      status: 'failed',
      totalChecks: 5,
      passedChecks: 1,
      failedChecks: 4,
      verdict: 'failed: 4 of 5 checks (status-mismatch, body-mismatch, slow, hanging)',
    });
    expect(run.startedAt).not.toBeNull();
    expect(Date.parse(run.finishedAt)).toBeGreaterThanOrEqual(Date.parse(run.startedAt));

    const byName = Object.fromEntries(run.results.map((r: { checkName: string }) => [r.checkName, r]));
    expect(run.results.map((r: { checkName: string }) => r.checkName)).toEqual(['good', 'status-mismatch', 'body-mismatch', 'slow', 'hanging']);
    expect(byName.good).toMatchObject({ passed: true, statusCode: 200, error: null, method: 'GET', url: `${target.baseUrl}/good` });
    expect(byName['status-mismatch']).toMatchObject({ passed: false, statusCode: 500, error: 'expected status 200, got 500' });
    expect(byName['body-mismatch']).toMatchObject({ passed: false, statusCode: 200, error: 'body does not contain "ok"' });
    expect(byName.slow).toMatchObject({ passed: false, statusCode: 200 });
    expect(byName.slow.latencyMs).toBeGreaterThanOrEqual(SLOW_MS - 5);
    expect(byName.slow.error).toBe(`latency ${byName.slow.latencyMs} ms above 100 ms`);
    expect(byName.hanging).toMatchObject({ passed: false, statusCode: null, error: 'timeout after 300 ms' });
    expect(byName.hanging.latencyMs).toBeGreaterThanOrEqual(295);
    for (const r of run.results) expect(Number.isInteger(r.latencyMs), r.checkName).toBe(true);

    // The same rows through the read endpoint and in the table.
    expect((await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${run.id}` })).json()).toEqual(run);
    expect(await t.app.db.select().from(smokeTestResults).where(eq(smokeTestResults.runId, run.id))).toHaveLength(5);

    // Each request carried a valid traceparent of the run's trace and the smoke user-agent.
    expect(target.seen).toHaveLength(5);
    for (const s of target.seen) {
      expect(s.headers.traceparent, s.path).toMatch(TRACEPARENT);
      expect(s.headers.traceparent!.slice(3, 35)).toBe(run.traceId);
      expect(s.headers['user-agent']).toBe(`valhalla-smoke/${t.app.lifecycle.version}`);
    }
    expect(new Set(target.seen.map((s) => s.headers.traceparent)).size).toBe(5);

    const refused = (await t.inject({ method: 'POST', url: `${PROFILES}/${refusedProfile.id}/smoke-runs?wait=true` })).json();
    expect(refused).toMatchObject({ status: 'failed', verdict: 'failed: 1 of 1 checks (refused)' });
    expect(refused.results[0]).toMatchObject({ passed: false, statusCode: null, error: 'connection refused', url: `${target.closedUrl}/good` });

    // Each failed run reached the onSmokeFailed listeners once its results were stored.
    expect(failures.map((f) => f.run.id)).toEqual(expect.arrayContaining([run.id, refused.id]));
    const failure = failures.find((f) => f.run.id === run.id)!;
    expect(failure.profile).toMatchObject({ id: profile.id, name: profile.name, environment: 'staging' });
    expect(failure.failedChecks.map((c) => c.name)).toEqual(['status-mismatch', 'body-mismatch', 'slow', 'hanging']);
  });

  it('passes when every check passes, and counts runs and check durations in /metrics', async () => {
    const profile = await profileWith([check('good', '/good', { bodyContains: 'ok' }), check('redirect', '/redirect', { expectedStatus: 301 })]);
    const before = failures.length;
    const run = (await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs?wait=true` })).json();
    expect(run).toMatchObject({ status: 'passed', passedChecks: 2, failedChecks: 0, verdict: 'passed: 2 of 2 checks' });
    expect(failures.length).toBe(before);

    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/valhalla_smoke_runs_total\{[^}]*verdict="passed"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/valhalla_smoke_runs_total\{[^}]*verdict="failed"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/valhalla_smoke_check_duration_seconds_count\{[^}]*outcome="passed"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/valhalla_smoke_check_duration_seconds_bucket\{le="0.5",[^}]*outcome="failed"/);
  });

  it('queues a run as a job without ?wait: 202, then a worker runs it once', async () => {
    const profile = await profileWith([check('good', '/good')]);
    const res = await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs` });
    expect(res.statusCode).toBe(202);
    const queued = res.json();
    expect(queued).toMatchObject({ status: 'queued', startedAt: null, finishedAt: null, verdict: null, totalChecks: 1, results: [] });
    expect(res.headers.location).toBe(`${ROOT}/smoke-runs/${queued.id}`);
    expect(t.app.jobs.definitions.queued).toContain(SMOKE_RUN_JOB);

    // Profile changes after the request do not change what the run checks.
    await t.inject({ method: 'PATCH', url: `${PROFILES}/${profile.id}`, payload: { smokeChecks: [check('other', '/status')] } });

    await vi.waitFor(async () => {
      await t.app.jobs.runDueQueued();
      expect((await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${queued.id}` })).json().status).toBe('passed');
    }, { timeout: 10_000, interval: 50 });
    const done = (await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${queued.id}` })).json();
    expect(done.results).toEqual([expect.objectContaining({ checkName: 'good', passed: true })]);

    // Running it again is a no-op: the run is finished, not re-executed.
    expect(await t.app.deployments.executor.execute(queued.id)).toBeUndefined();
    expect((await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${queued.id}` })).json().results).toHaveLength(1);
  });

  // Issue 10, item 5: the checks' requests carried traceparent but dropped the caller's tracestate.
  it('forwards the caller\'s tracestate and random-trace-id flag on every check, also from a queued run', async () => {
    const profile = await profileWith([check('good', '/good'), check('status', '/status', { expectedStatus: 500 })]);
    const traceId = 'ab'.repeat(16);
    const headers = { traceparent: `00-${traceId}-${'cd'.repeat(8)}-03`, tracestate: 'rojo=00f067aa0ba902b7 \t, \tcongo=t61rcWkgMzE' };
    for (const wait of [true, false]) {
      target.seen.length = 0;
      const res = await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs${wait ? '?wait=true' : ''}`, headers });
      expect(res.statusCode, res.body).toBe(wait ? 201 : 202);
      const runId = res.json().id;
      await vi.waitFor(async () => {
        await t.app.jobs.runDueQueued();
        expect((await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${runId}` })).json().status).not.toMatch(/queued|running/);
      }, { timeout: 10_000, interval: 50 });
      expect(target.seen).toHaveLength(2);
      for (const seen of target.seen) {
        expect(seen.headers.tracestate, seen.path).toBe('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
        expect(seen.headers.traceparent, seen.path).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-03$`));
      }
    }
    // Without a tracestate none is sent.
    target.seen.length = 0;
    await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs?wait=true`, headers: { traceparent: headers.traceparent } });
    expect(target.seen.map((seen) => seen.headers.tracestate)).toEqual([undefined, undefined]);
  });

  it('starts a run with a recorded deployment (runSmoke) and links the two', async () => {
    const profile = await profileWith([check('good', '/good')]);
    const res = await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/deployments`, payload: { version: '2.0.0', commitSha: 'deadbeef', runSmoke: true } });
    expect(res.statusCode, res.body).toBe(201);
    const deployment = res.json();
    expect(deployment.smokeRunId).toEqual(expect.any(Number));
    await vi.waitFor(async () => {
      await t.app.jobs.runDueQueued();
      expect((await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${deployment.smokeRunId}` })).json().status).toBe('passed');
    }, { timeout: 10_000, interval: 50 });
    const run = (await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${deployment.smokeRunId}` })).json();
    expect(run.deploymentId).toBe(deployment.id);
  });

  it('keeps at most the profile concurrency of requests in flight', async () => {
    target.resetCounters();
    const profile = await profileWith(
      Array.from({ length: 6 }, (_, i) => check(`held-${i}`, `/held/${i}`)),
      { concurrency: 2 },
    );
    const run = (await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs?wait=true` })).json();
    expect(run.status).toBe('passed');
    expect(target.seen).toHaveLength(6);
    expect(target.maxInFlight).toBe(2);
  });

  it('lists runs newest first, filters by status, and shows the latest verdict in the overview', async () => {
    const profile = await profileWith([check('good', '/good')]);
    const first = (await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs?wait=true` })).json();
    await t.inject({ method: 'PATCH', url: `${PROFILES}/${profile.id}`, payload: { smokeChecks: [check('broken', '/status')] } });
    const second = (await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs?wait=true` })).json();
    const third = (await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs` })).json(); // queued, not run
    await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/deployments`, payload: { version: '3.1.4' } });

    const list = (await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}/smoke-runs` })).json();
    expect(list.items.map((r: { id: number }) => r.id)).toEqual([third.id, second.id, first.id]);
    expect(list.items[0].results).toBeUndefined();
    const failed = (await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}/smoke-runs?status=failed` })).json();
    expect(failed.items.map((r: { id: number }) => r.id)).toEqual([second.id]);
    const paged = (await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}/smoke-runs?limit=2` })).json();
    const rest = (await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}/smoke-runs?limit=2&cursor=${paged.nextCursor}` })).json();
    expect(rest.items.map((r: { id: number }) => r.id)).toEqual([first.id]);
    expect((await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}/smoke-runs?status=done` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs?wait=maybe` })).statusCode).toBe(400);

    let item: { currentVersion: string; lastRun: unknown } | undefined;
    let cursor: string | null = null;
    do {
      const page: { items: Array<{ id: number; currentVersion: string; lastRun: unknown }>; nextCursor: string | null } = (
        await t.inject({ method: 'GET', url: `${ROOT}?limit=500${cursor ? `&cursor=${cursor}` : ''}` })
      ).json();
      item = page.items.find((p) => p.id === profile.id) ?? item;
      cursor = page.nextCursor;
    } while (cursor);
    expect(item).toMatchObject({ currentVersion: '3.1.4', lastRun: { id: second.id, status: 'failed', verdict: 'failed: 1 of 1 checks (broken)' } });

    const overview = await t.app.overview.read();
    expect(overview.deployments).toMatchObject({ profiles: expect.any(Number), runsInProgress: expect.any(Number), runsSinceStart: { passed: expect.any(Number) } });
    expect((overview.deployments as { runsInProgress: number }).runsInProgress).toBeGreaterThanOrEqual(1);
  });

  it('lets only one executor hold a run, and another take over a run whose claim ran out', async () => {
    const profile = await profileWith([check('good', '/good')]);
    const queued = (await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs` })).json();
    const { service } = t.app.deployments;
    const first = await service.claimRun(queued.id);
    expect(first?.status).toBe('running');
    expect(await service.claimRun(queued.id)).toBeUndefined();
    expect(await t.app.deployments.executor.execute(queued.id)).toBeUndefined();

    // The first executor died: once its claim runs out, the run is taken over and executed.
    await t.app.db.update(smokeRuns).set({ claimedUntil: new Date(Date.now() - 1000) }).where(eq(smokeRuns.id, queued.id));
    const finished = await t.app.deployments.executor.execute(queued.id);
    expect(finished).toMatchObject({ id: queued.id, status: 'passed' });
    // The old holder cannot overwrite the verdict it no longer owns.
    expect(await service.finishRun(first!, { status: 'failed', passed: 0, failed: 1, verdict: 'stale', results: [] })).toBeUndefined();
    const run = (await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${queued.id}` })).json();
    expect(run).toMatchObject({ status: 'passed', verdict: 'passed: 1 of 1 checks' });
    expect(run.results).toHaveLength(1);
  });

  it('ends a run in flight as an error when the instance shuts down', async () => {
    const other = await t.another();
    const profile = await profileWith([check('hanging', '/hang', { timeoutMs: 20_000, maxLatencyMs: 20_000 })]);
    const queued = (await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs` })).json();
    const running = other.deployments.executor.execute(queued.id);
    await vi.waitFor(async () => expect((await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${queued.id}` })).json().status).toBe('running'), { timeout: 5000, interval: 20 });
    await other.close();
    await running;
    const run = (await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${queued.id}` })).json();
    expect(run).toMatchObject({ status: 'error', verdict: 'error: interrupted by shutdown before every check finished' });
    expect(run.results).toEqual([expect.objectContaining({ checkName: 'hanging', passed: false, error: 'aborted' })]);
  });
});

describe('documentation', () => {
  it('documents every route with the pack name and a deployments scope', async () => {
    const routes = t.app.routeCatalog.filter((r) => r.pack === 'deployments' && r.method !== 'HEAD');
    expect(routes.length).toBe(12);
    for (const r of routes) {
      expect(r.scope, `${r.method} ${r.url}`).toMatch(/^deployments:(read|write)$/);
      expect(r.summary).toBeTruthy();
    }
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths[PROFILES])).toEqual(expect.arrayContaining(['get', 'post']));
    expect(Object.keys(doc.paths[`${PROFILES}/{id}`])).toEqual(expect.arrayContaining(['get', 'patch', 'delete']));
    expect(doc.paths[ROOT].get.summary).toBeTruthy();
  });
});

// Active once the api-keys pack is in the pack list (authentication and scope checks).
describe.skipIf(!allPacks.some((p) => p.meta.name === 'api-keys'))('access', () => {
  it('answers 401 without a key and 403 for writes with a read-only key', async () => {
    const profile = await profileWith([check('good', '/good')]);
    expect((await t.app.inject({ method: 'GET', url: ROOT })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/deployments`, payload: { version: '1.0.0' } })).statusCode).toBe(401);

    const { token } = await t.keyWith(['deployments:read']);
    const headers = authHeader(token);
    expect((await t.inject({ method: 'GET', url: ROOT, headers })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}/deployments`, headers })).statusCode).toBe(200);
    const writes: Array<[string, string, unknown?]> = [
      ['POST', `${PROFILES}/${profile.id}/deployments`, { version: '1.0.0' }],
      ['POST', PROFILES, validBody()],
      ['PATCH', `${PROFILES}/${profile.id}`, { concurrency: 1 }],
      ['DELETE', `${PROFILES}/${profile.id}`],
      ['POST', `${PROFILES}/${profile.id}/smoke-runs`],
    ];
    for (const [method, url, payload] of writes) {
      const res = await t.inject({ method: method as 'POST', url, payload: payload as object | undefined, headers });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.json().type).toBe('/problems/forbidden');
    }
    expect((await t.inject({ method: 'GET', url: `${PROFILES}/${profile.id}/deployments` })).json().items).toEqual([]);

    const writer = await t.keyWith(['deployments:write']);
    const recorded = await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/deployments`, payload: { version: '1.0.0' }, headers: authHeader(writer.token) });
    expect(recorded.statusCode).toBe(201);
    expect(recorded.json().deployedBy).toBe(`client:${writer.clientId}`);
  });
});

describe('abandoned smoke runs', () => {
  it('ends a run left running past its claim as an error, and leaves live and finished runs alone', async () => {
    const profile = await profileWith([check('home', '/good')]);
    const res = await t.inject({ method: 'POST', url: `${PROFILES}/${profile.id}/smoke-runs?wait=true` });
    expect(res.statusCode, res.body).toBe(201);
    const finished = res.json<{ id: number; status: string }>();
    // As a run whose executor died, or whose verdict could not be written while the database was
    // down, looks: running, its claim long over. And one whose claim is still live.
    const now = Date.now();
    const base = { profileId: profile.id, baseUrl: target.baseUrl, checks: [], concurrency: 1, requestedBy: 'test', totalChecks: 1, status: 'running' as const, startedAt: new Date(now - 600_000) };
    const [abandoned] = await t.app.db.insert(smokeRuns).values({ ...base, claimedUntil: new Date(now - 120_000) }).returning({ id: smokeRuns.id });
    const [live] = await t.app.db.insert(smokeRuns).values({ ...base, claimedUntil: new Date(now + 120_000) }).returning({ id: smokeRuns.id });

    const ended = await t.app.deployments.service.endAbandonedRuns(60_000);
    expect(ended).toEqual([abandoned!.id]);
    const read = async (id: number) => (await t.inject({ method: 'GET', url: `${ROOT}/smoke-runs/${id}` })).json<{ status: string; verdict: string | null; finishedAt: string | null }>();
    expect(await read(abandoned!.id)).toMatchObject({ status: 'error', verdict: expect.stringContaining('abandoned') });
    expect((await read(abandoned!.id)).finishedAt).not.toBeNull();
    expect((await read(live!.id)).status).toBe('running');
    expect((await read(finished.id)).status).toBe(finished.status);
  });
});
