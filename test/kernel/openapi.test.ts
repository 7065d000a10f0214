import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

/** Every route a pack adds is documented: tags, summary, and a schema for each response code. */
interface Operation {
  tags?: string[];
  summary?: string;
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

let t: TestApp;
let paths: Record<string, Record<string, Operation>>;

beforeAll(async () => {
  t = await createTestApp();
  paths = (await t.inject({ method: 'GET', url: '/docs/json' })).json().paths;
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
          if (code === '204') continue;
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
    // The console's page, script and stylesheet hold no data (the script asks for a key); they are
    // hidden from the OpenAPI document, which describes the JSON API.
    expect([...publicUrls].sort()).toEqual(['/console', '/console/app.js', '/console/console.css', '/live', '/metrics', '/problems', '/problems/:kind', '/ready']);
  });

  it('documents 401 and 403 on every operation that needs a key', () => {
    for (const r of t.app.routeCatalog.filter((e) => e.scope !== null && e.method !== 'HEAD')) {
      const op = paths[r.url.replace(/:(\w+)/g, '{$1}')]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${r.url} in the document`).toBeDefined();
      expect(Object.keys(op!.responses ?? {}), `${r.method} ${r.url}`).toEqual(expect.arrayContaining(['401', '403']));
    }
  });
});
