import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationIdFor } from '../../src/api-docs.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

/** Every route a pack adds is documented: tags, summary, and a schema for each response code. */
interface Operation {
  operationId?: string;
  tags?: string[];
  summary?: string;
  description?: string;
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ $ref?: string; name?: string; in?: string }>;
  responses?: Record<string, { description?: string; headers?: Record<string, { $ref: string }>; content?: Record<string, { schema?: unknown }> }>;
}
interface Document {
  servers?: unknown[];
  components: { securitySchemes?: Record<string, { type: string; scheme?: string; in?: string; name?: string }>; parameters?: Record<string, { name: string; in: string }> };
  paths: Record<string, Record<string, Operation>>;
}

let t: TestApp;
let doc: Document;
let paths: Record<string, Record<string, Operation>>;

beforeAll(async () => {
  t = await createTestApp();
  doc = (await t.inject({ method: 'GET', url: '/docs/json' })).json<Document>();
  paths = doc.paths;
});
afterAll(async () => t?.close());

describe('OpenAPI document', () => {
  it('documents every operation with tags, a summary and typed responses', () => {
    const ops = Object.entries(paths).filter(([p]) => !p.startsWith('/docs'));
    expect(ops.length).toBeGreaterThan(10);
    for (const [path, methods] of ops) {
      for (const [method, op] of Object.entries(methods)) {
        const label = `${method.toUpperCase()} ${path}`;
        expect(op.tags?.length, `${label} tags`).toBeGreaterThan(0);
        expect(op.summary, `${label} summary`).toBeTruthy();
        const codes = Object.keys(op.responses ?? {});
        expect(codes.some((c) => /^2\d\d$/.test(c)), `${label} has a 2xx response schema`).toBe(true);
        for (const code of codes) {
          if (code === '204' || code === '304') continue; // no content by definition (RFC 9110)
          expect(op.responses![code]!.content, `${label} ${code} has a schema`).toBeDefined();
        }
      }
    }
  });

  it('declares a scope on every /system route, and only probes, docs, problem types and the console page are public', () => {
    const packRoutes = t.app.routeCatalog.filter((r) => !r.url.startsWith('/docs'));
    expect(packRoutes.length).toBeGreaterThan(10);
    for (const r of packRoutes) {
      const label = `${r.method} ${r.url}`;
      expect(r.pack, `${label} pack`).toBeTruthy();
      if (r.url.startsWith('/system')) expect(r.scope, `${label} scope`).toMatch(/^[a-z-]+:(read|write)$|^admin$/);
      else expect(r.public, `${label} public`).toBe(true);
    }
    const publicUrls = new Set(packRoutes.filter((r) => r.public).map((r) => r.url));
    // The console's page, script, stylesheet, icon and library files hold no data (the script asks
    // for a key); they are hidden from the OpenAPI document, which describes the JSON API.
    const consoleFiles = [...publicUrls].filter((u) => u.startsWith('/console'));
    expect(consoleFiles.filter((u) => !u.startsWith('/console/vendor/')).sort()).toEqual(['/console', '/console/app.js', '/console/console.css', '/console/favicon.svg']);
    expect(consoleFiles.filter((u) => u.startsWith('/console/vendor/'))).toHaveLength(4);
    expect([...publicUrls].filter((u) => !u.startsWith('/console')).sort()).toEqual(['/live', '/metrics', '/problems', '/problems/:kind', '/ready']);
  });

  it('documents 401 and 403 on every operation that needs a key', () => {
    for (const r of t.app.routeCatalog.filter((e) => e.scope !== null && e.method !== 'HEAD')) {
      const op = paths[r.url.replace(/:(\w+)/g, '{$1}')]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${r.url} in the document`).toBeDefined();
      expect(Object.keys(op!.responses ?? {}), `${r.method} ${r.url}`).toEqual(expect.arrayContaining(['401', '403']));
    }
  });
});

/** Each operation of the document with its route's method and URL template. */
function operations(): Array<{ label: string; method: string; url: string; op: Operation; config: (typeof t.app.routeCatalog)[number]['config'] }> {
  return t.app.routeCatalog
    .filter((r) => r.method !== 'HEAD' && paths[r.url.replace(/:(\w+)/g, '{$1}')]?.[r.method.toLowerCase()] !== undefined)
    .map((r) => ({ label: `${r.method} ${r.url}`, method: r.method, url: r.url, op: paths[r.url.replace(/:(\w+)/g, '{$1}')]![r.method.toLowerCase()]!, config: r.config }));
}
const headerParams = (op: Operation) => (op.parameters ?? []).flatMap((p) => (p.$ref ? [p.$ref.replace('#/components/parameters/', '')] : []));

describe('OpenAPI document: what the request hooks do (issue 10, item 8)', () => {
  it('offers both ways to send a key, and each operation names the scope it needs', () => {
    expect(doc.components.securitySchemes).toEqual({
      bearerApiKey: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
      apiKeyHeader: expect.objectContaining({ type: 'apiKey', in: 'header', name: 'X-API-Key' }),
    });
    const ops = operations();
    expect(ops.length).toBeGreaterThan(40);
    for (const { label, op, config } of ops) {
      if (config.scope) {
        expect(op.security, label).toEqual([{ bearerApiKey: [config.scope] }, { apiKeyHeader: [config.scope] }]);
        expect(op.description, label).toContain(`**Scope:** \`${config.scope}\``);
      } else {
        expect(op.security, `${label} is public`).toEqual([]);
      }
    }
    expect(paths['/system/flags/{key}']!.get!.description).toContain('`flags:write`, `system:read`, `admin`');
  });

  it('documents every problem as application/problem+json, described by its kinds', () => {
    for (const { label, op } of operations()) {
      for (const [status, res] of Object.entries(op.responses ?? {})) {
        if (!/^[45]/.test(status)) continue;
        expect(Object.keys(res.content ?? {}), `${label} ${status}`).toEqual(['application/problem+json']);
        expect(res.description, `${label} ${status}`).toMatch(/\(`\/problems\/[a-z-]+`\)/);
      }
    }
    expect(paths['/system/flags']!.post!.responses!['401']!.description).toBe('Authentication required (`/problems/unauthorized`)');
  });

  it('documents 429 with Retry-After and the RateLimit headers on every limited route, and the limit headers on its answers', () => {
    let limited = 0;
    for (const { label, op, config } of operations()) {
      const res = op.responses ?? {};
      if (config.rateLimit === false) {
        expect(res['429'], `${label} is not limited`).toBeUndefined();
        continue;
      }
      limited++;
      expect(Object.keys(res['429']?.headers ?? {}), label).toEqual(expect.arrayContaining(['Retry-After', 'RateLimit', 'RateLimit-Policy', 'X-RateLimit-Remaining']));
      const success = Object.keys(res).find((c) => /^2/.test(c))!;
      expect(Object.keys(res[success]!.headers ?? {}), `${label} ${success}`).toEqual(expect.arrayContaining(['RateLimit', 'X-RateLimit-Limit']));
    }
    expect(limited).toBeGreaterThan(40);
    expect(paths['/system/flags']!.get!.responses!['429']!.description).toContain('quota-exceeded');
    expect(paths['/problems']!.get!.responses!['429']!.description).not.toContain('quota-exceeded'); // no key, no quota
  });

  it('documents 401 with WWW-Authenticate, Location on 201/202, and X-Request-ID both ways on every operation', () => {
    for (const { label, op } of operations()) {
      expect(headerParams(op), label).toContain('XRequestID');
      for (const [status, res] of Object.entries(op.responses ?? {})) {
        expect(Object.keys(res.headers ?? {}), `${label} ${status}`).toContain('X-Request-ID');
        if (status === '401') expect(Object.keys(res.headers ?? {}), label).toContain('WWW-Authenticate');
        if (status === '201' || status === '202') expect(Object.keys(res.headers ?? {}), `${label} ${status}`).toContain('Location');
      }
    }
    expect(doc.components.parameters?.XRequestID).toMatchObject({ name: 'X-Request-ID', in: 'header' });
  });

  it('documents 423 and the X-Freeze-Override header on freezable writes only, 503 where the shield can close a route', () => {
    for (const { label, method, op, config } of operations()) {
      const freezable = config.freeze === true && method !== 'GET';
      expect(op.responses?.['423'] !== undefined, `${label} 423`).toBe(freezable);
      expect(headerParams(op).includes('XFreezeOverride'), `${label} X-Freeze-Override`).toBe(freezable);
      if (!config.public && config.shield !== false) expect(op.responses?.['503']?.description, label).toContain('/problems/maintenance');
    }
    expect(paths['/system/flags']!.post!.responses!['503']!.description).toContain('/problems/read-only');
    expect(paths['/system/flags/evaluate']!.post!.responses!['503']!.description).not.toContain('/problems/read-only'); // shield: 'read'
    expect(paths['/live']!.get!.responses!['503']).toBeUndefined();
  });

  it('gives every operation a unique operationId derived from its method and URL', () => {
    const ids = operations().map(({ op }) => op.operationId);
    expect(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z0-9]*$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(paths['/system/flags/{key}/evaluate']!.get!.operationId).toBe('getSystemFlagsByKeyEvaluate');
    expect(operationIdFor('POST', '/system/api-clients/:id/keys/:keyId/rotate')).toBe('postSystemApiClientsByIdKeysByKeyIdRotate');
  });

  it('leaves out what a disabled pack would have answered; /metrics takes METRICS_TOKEN when one is set', async () => {
    const app = await t.another({ PACKS_DISABLED: 'rate-limits', METRICS_TOKEN: 'metrics-token-0123456789' });
    const other = (await app.inject({ method: 'GET', url: '/docs/json' })).json<Document>();
    expect(other.paths['/metrics']!.get!.security).toEqual([{ metricsToken: [] }]);
    expect(other.components.securitySchemes?.metricsToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/metrics']!.get!.security).toEqual([]);
    const flags = other.paths['/system/flags']!.get!;
    expect(flags.responses!['429']).toBeUndefined();
    expect(Object.keys(flags.responses!['200']!.headers ?? {})).not.toContain('RateLimit');
    expect(flags.responses!['401']).toBeDefined();
  });
});

const redocly = path.resolve('node_modules/.bin/redocly');
describe('OpenAPI document: an independent linter', () => {
  // @redocly/cli is a pinned devDependency; without it (npm install --omit=dev) there is nothing to run.
  it.skipIf(!existsSync(redocly))('passes `redocly lint` (recommended rules) with no error', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'openapi-'));
    try {
      const file = path.join(dir, 'openapi.json');
      writeFileSync(file, JSON.stringify(doc));
      const run = await promisify(execFile)(redocly, ['lint', file, '--format=json', '--config', path.resolve('redocly.yaml')], {
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', NO_COLOR: '1' },
        maxBuffer: 16 * 1024 * 1024,
      }).catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '' }));
      const report = JSON.parse(run.stdout) as { totals: { errors: number }; problems: Array<{ ruleId: string; severity: string; message: string }> };
      expect(report.problems.filter((p) => p.severity === 'error')).toEqual([]);
      expect(report.totals.errors).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
