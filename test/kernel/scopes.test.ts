import { Type } from '@sinclair/typebox';
import type { FastifyContextConfig } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KERNEL_SCOPES, type DeclaredScopes } from '../../src/access.js';
import { definePack, resolvePacks } from '../../src/pack.js';
import { authHeader, createTestApp, type TestApp } from '../helpers/app.js';

/** A pack that brings its own scopes and touches nothing outside its definition. */
const notesScopes = {
  'notes:read': 'Read notes',
  'notes:write': 'Write notes',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof notesScopes> {}
}

const notes = definePack({
  name: 'notes',
  code: 'NO',
  description: 'Notes (test pack)',
  scopes: notesScopes,
  routes: async (app) => {
    const schema = { tags: ['notes'], summary: 'notes', response: { 200: Type.Object({ ok: Type.Boolean() }) } };
    app.get('/system/notes', { config: { scope: 'notes:read' }, schema }, async () => ({ ok: true }));
    app.post('/system/notes', { config: { scope: 'notes:write' }, schema }, async () => ({ ok: true }));
  },
});

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { extraPacks: [notes] });
});
afterAll(async () => t?.close());

describe('scopes declared by packs (issue 10, item 9)', () => {
  it('keeps only the kernel scopes in the core and collects every loaded pack\'s', () => {
    expect(Object.keys(KERNEL_SCOPES).sort()).toEqual(['admin', 'system:read', 'system:write']);
    const byScope = new Map(t.app.scopes.entries.map((e) => [e.scope, e.pack]));
    expect(byScope.get('admin')).toBeNull();
    expect(byScope.get('notes:write')).toBe('notes');
    expect(byScope.get('flags:read')).toBe('feature-flags');
    expect(byScope.get('clients:read')).toBe('api-keys');
    expect(byScope.get('audit:read')).toBe('admin');
    expect(byScope.get('maintenance:write')).toBe('maintenance');
    // Every scope a route requires is declared by the kernel or a loaded pack.
    for (const r of t.app.routeCatalog) if (r.scope) expect(t.app.scopes.has(r.scope), `${r.method} ${r.url}`).toBe(true);
  });

  it("grants a pack's own scope to a key, which then opens that pack's routes and no others", async () => {
    const reader = await t.keyWith(['notes:read']);
    const get = await t.inject({ method: 'GET', url: '/system/notes', headers: authHeader(reader.token) });
    expect(get.statusCode).toBe(200);
    const post = await t.inject({ method: 'POST', url: '/system/notes', headers: authHeader(reader.token) });
    expect(post.statusCode).toBe(403);
    expect(post.json()).toMatchObject({ requiredScope: 'notes:write' });
    expect((await t.inject({ method: 'GET', url: '/system/flags', headers: authHeader(reader.token) })).statusCode).toBe(403);
  });

  it('offers exactly the scopes of this instance when creating clients and keys, in the document too', async () => {
    const doc = (await t.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: { properties: { scopes: { items: { anyOf: Array<{ enum: string[] }> } } } } }> } }>> }>();
    const offered = doc.paths['/system/api-clients']!.post!.requestBody.content['application/json']!.schema.properties.scopes.items.anyOf.map((s) => s.enum[0]);
    expect(offered.sort()).toEqual([...t.app.scopes.names].sort());
    expect(offered).toContain('notes:read');
    const typo = await t.inject({ method: 'POST', url: '/system/api-clients', payload: { name: 'typo', owner: 'tests', scopes: ['notes:raed'] } });
    expect(typo.statusCode).toBe(400);
    expect(typo.json().errors).toEqual(expect.arrayContaining([expect.objectContaining({ pointer: '#/scopes/0' })]));
  });

  it("with a pack disabled: other scopes are still granted, its own are refused, and keys holding them keep them, inert", async () => {
    const key = await t.keyWith(['deployments:read', 'system:read']);
    const onlyDeployments = await t.keyWith(['deployments:read']);
    const app = await t.another({ PACKS_DISABLED: 'deployments' }, { extraPacks: [notes] });
    expect(app.scopes.has('deployments:read')).toBe(false);

    const created = await t.inject({ method: 'POST', url: '/system/api-clients', payload: { name: 'without-deployments', owner: 'tests', scopes: ['system:read', 'notes:read'] } }, app);
    expect(created.statusCode).toBe(201);
    const refused = await t.inject({ method: 'POST', url: '/system/api-clients', payload: { name: 'with-deployments', owner: 'tests', scopes: ['deployments:read'] } }, app);
    expect(refused.statusCode).toBe(400);

    expect((await app.inject({ method: 'GET', url: '/system/info', headers: authHeader(key.token) })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/system/info', headers: authHeader(onlyDeployments.token) })).statusCode).toBe(403);
    const client = await t.inject({ method: 'GET', url: `/system/api-clients/${key.clientId}` }, app);
    expect(client.json().scopes).toEqual(['deployments:read', 'system:read']);
  });

  it('refuses to start when a route needs a scope that no loaded pack declares (its pack disabled)', async () => {
    const needsDeployments = definePack({
      name: 'deploy-report',
      code: 'DR',
      description: 'uses a scope of the deployments pack',
      routes: async (app) => {
        app.get('/system/deploy-report', { config: { scope: 'deployments:read' }, schema: { tags: ['t'], summary: 's', response: { 200: Type.Object({}) } } }, async () => ({}));
      },
    });
    await expect(t.another({ PACKS_DISABLED: 'deployments' }, { extraPacks: [needsDeployments] })).rejects.toThrow(
      "GET /system/deploy-report declares unknown scope 'deployments:read'",
    );
  });

  it('refuses a scope declared twice, a kernel scope redeclared, and a malformed scope name', () => {
    const again = definePack({ name: 'again', code: 'AG', description: '', scopes: { 'notes:read': 'mine too' } });
    expect(() => resolvePacks([notes, again], '')).toThrow("pack 'again' declares scope 'notes:read', which pack 'notes' already declares");
    expect(resolvePacks([notes, again], 'notes').map((p) => p.meta.name)).toEqual(['again']);
    expect(() => definePack({ name: 'bad', code: 'BA', description: '', scopes: { admin: 'x' } })).toThrow("declares scope 'admin'");
    expect(() => definePack({ name: 'bad', code: 'BA', description: '', scopes: { 'Notes:Read': 'x' } })).toThrow(/lower-case kebab/);
    expect(() => definePack({ name: 'bad', code: 'BA', description: '', scopes: { notes: 'x' } })).toThrow(/'<area>:<action>'/);
  });

  it('makes a scope nobody declares a compile error in a route config', () => {
    const typo: FastifyContextConfig = {
      // @ts-expect-error 'notes:raed' is in no pack's scopes (npm run typecheck fails if this compiles)
      scope: 'notes:raed',
    };
    const fine: FastifyContextConfig = { scope: 'notes:read' };
    expect([typo.scope, fine.scope]).toEqual(['notes:raed', 'notes:read']);
  });
});
