import { and, eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { allPacks } from '../index.js';
import templatePack from './index.js';

const PATH = '/system/template-items';

let t: TestApp;
beforeAll(async () => {
  // Loaded as an extra pack until it is in plugins/index.ts, then from the list like any other.
  t = await createTestApp({}, { extraPacks: allPacks.includes(templatePack) ? [] : [templatePack] });
});
afterAll(async () => t?.close());

const create = (body: Record<string, unknown>, app: FastifyInstance = t.app) =>
  t.inject({ method: 'POST', url: PATH, payload: body }, app);

const auditRows = (id: number) =>
  t.app.db
    .select()
    .from(adminOperations)
    .where(and(eq(adminOperations.targetType, 'template-item'), eq(adminOperations.targetId, String(id))))
    .orderBy(adminOperations.id);

describe('template pack (XX)', () => {
  it('creates, reads, changes and deletes an item', async () => {
    const res = await create({ name: 'crud-1', description: 'first' });
    expect(res.statusCode).toBe(201);
    const item = res.json();
    expect(item).toMatchObject({ name: 'crud-1', description: 'first' });
    expect(Number.isInteger(item.id)).toBe(true);
    expect(new Date(item.createdAt).toISOString()).toBe(item.createdAt);
    expect(res.headers.location).toBe(`${PATH}/${item.id}`);

    const read = await t.inject({ method: 'GET', url: `${PATH}/${item.id}` });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual(item);

    const patched = await t.inject({ method: 'PATCH', url: `${PATH}/${item.id}`, payload: { description: 'changed' } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ id: item.id, name: 'crud-1', description: 'changed', createdAt: item.createdAt });
    expect(Date.parse(patched.json().updatedAt)).toBeGreaterThanOrEqual(Date.parse(item.updatedAt));

    const deleted = await t.inject({ method: 'DELETE', url: `${PATH}/${item.id}` });
    expect(deleted.statusCode).toBe(204);
    expect(deleted.body).toBe('');
    expect((await t.inject({ method: 'GET', url: `${PATH}/${item.id}` })).statusCode).toBe(404);
  });

  it('answers 404 problems for an unknown id on read, change and delete', async () => {
    for (const [method, payload] of [['GET'], ['PATCH', { description: 'x' }], ['DELETE']] as const) {
      const res = await t.inject({ method, url: `${PATH}/999999`, payload });
      expect(res.statusCode, method).toBe(404);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ type: '/problems/resource-not-found', instance: `${PATH}/999999` });
    }
  });

  it('answers 409 for a duplicate name, on create and on rename', async () => {
    expect((await create({ name: 'dup-a' })).statusCode).toBe(201);
    const b = (await create({ name: 'dup-b' })).json();

    const again = await create({ name: 'dup-a' });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ type: '/problems/conflict', name: 'dup-a' });

    const rename = await t.inject({ method: 'PATCH', url: `${PATH}/${b.id}`, payload: { name: 'dup-a' } });
    expect(rename.statusCode).toBe(409);
    expect((await t.inject({ method: 'GET', url: `${PATH}/${b.id}` })).json().name).toBe('dup-b');
  });

  it('rejects bad input with 400 problems that point at the field', async () => {
    const unknown = await create({ name: 'ok-name', colour: 'red' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ type: '/problems/validation-failed' });
    expect(unknown.json().errors).toContainEqual(expect.objectContaining({ in: 'body', pointer: '#/colour' }));

    const long = await create({ name: 'n'.repeat(101) });
    expect(long.statusCode).toBe(400);
    expect(long.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/name' }));

    expect((await create({})).json().errors).toContainEqual(expect.objectContaining({ pointer: '#/name', message: 'is required' }));
    expect((await create({ name: 'has space' })).statusCode).toBe(400);
    expect((await create({ name: 'ok-desc', description: 'd'.repeat(1001) })).statusCode).toBe(400);

    for (const id of ['abc', '0', '-1', '1.5', '99999999999999999999']) {
      const res = await t.inject({ method: 'GET', url: `${PATH}/${id}` });
      expect(res.statusCode, id).toBe(400);
      expect(res.json().errors).toContainEqual(expect.objectContaining({ in: 'params', pointer: '#/id' }));
    }

    const id = (await create({ name: 'patch-target' })).json().id;
    expect((await t.inject({ method: 'PATCH', url: `${PATH}/${id}`, payload: {} })).statusCode).toBe(400);
    expect((await t.inject({ method: 'PATCH', url: `${PATH}/${id}`, payload: { id: 5 } })).statusCode).toBe(400);

    expect((await t.inject({ method: 'GET', url: `${PATH}?sort=name` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${PATH}?limit=501` })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${PATH}?cursor=bogus` })).json().type).toBe('/problems/invalid-cursor');
    // A cursor that decodes but was altered is still the client's mistake, not a database error.
    const altered = Buffer.from(JSON.stringify(['1 or 1=1'])).toString('base64url');
    expect((await t.inject({ method: 'GET', url: `${PATH}?cursor=${altered}` })).json().type).toBe('/problems/invalid-cursor');
  });

  it('records each write in admin_operations, in the same transaction as the write', async () => {
    const res = await create({ name: 'audited' }, t.app);
    const item = res.json();
    const requestId = res.headers['x-request-id'];
    await t.inject({ method: 'PATCH', url: `${PATH}/${item.id}`, payload: { name: 'audited-2' } });
    // A write that fails leaves no audit entry behind: the conflict rolls the entry back with it.
    await create({ name: 'taken-for-audit' });
    expect((await t.inject({ method: 'PATCH', url: `${PATH}/${item.id}`, payload: { name: 'taken-for-audit' } })).statusCode).toBe(409);
    await t.inject({ method: 'DELETE', url: `${PATH}/${item.id}` });

    const rows = await auditRows(item.id);
    expect(rows.map((r) => r.operation)).toEqual(['template-item.create', 'template-item.update', 'template-item.delete']);
    const [created, updated, deleted] = rows;
    expect(created).toMatchObject({ before: null, after: item, correlationId: requestId, actorType: 'client', keyId: t.adminKey.slice(4, 16), result: 'success' });
    expect(updated?.before).toMatchObject({ name: 'audited' });
    expect(updated?.after).toMatchObject({ name: 'audited-2' });
    expect(deleted).toMatchObject({ after: null, before: expect.objectContaining({ name: 'audited-2' }) });
  });

  it('pages through a filtered list with an opaque cursor', async () => {
    const names = ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'];
    for (const name of names) expect((await create({ name })).statusCode).toBe(201);
    await create({ name: 'other-page' });
    await create({ name: 'pageXlike' }); // `_` in a prefix is a literal, not a LIKE wildcard

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `${PATH}?namePrefix=page-&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await t.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((i: { name: string }) => i.name));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(names);
    expect(pages).toBe(3);

    const underscore = await t.inject({ method: 'GET', url: `${PATH}?namePrefix=page_` });
    expect(underscore.json().items).toEqual([]);
    const all = await t.inject({ method: 'GET', url: `${PATH}?limit=500` });
    expect(all.json().items.map((i: { name: string }) => i.name)).toEqual(expect.arrayContaining([...names, 'other-page', 'pageXlike']));
  });

  it('keeps the names in memory on every instance, refreshed on each write', async () => {
    const other = await t.another();
    expect(t.app.templateItems.hasName('hot-path')).toBe(false);

    const item = (await create({ name: 'hot-path' })).json();
    // The writing instance reloads after its commit; the other one hears the NOTIFY.
    expect(t.app.templateItems.hasName('hot-path')).toBe(true);
    await vi.waitFor(() => expect(other.templateItems.hasName('hot-path')).toBe(true), { timeout: 5000, interval: 20 });

    await t.inject({ method: 'DELETE', url: `${PATH}/${item.id}` }, other);
    expect(other.templateItems.hasName('hot-path')).toBe(false);
    await vi.waitFor(() => expect(t.app.templateItems.hasName('hot-path')).toBe(false), { timeout: 5000, interval: 20 });
  });

  it('needs its own scopes: template:read to read, template:write to change', async () => {
    const reader = await t.keyWith(['template:read']);
    const headers = { authorization: `Bearer ${reader.token}` };
    expect((await t.inject({ method: 'GET', url: PATH, headers })).statusCode).toBe(200);
    const write = await t.inject({ method: 'POST', url: PATH, headers, payload: { name: 'scoped' } });
    expect(write.statusCode).toBe(403);
    expect(write.json()).toMatchObject({ requiredScope: 'template:write' });
    expect(t.app.scopes.entries.filter((e) => e.pack === 'template').map((e) => e.scope)).toEqual(['template:read', 'template:write']);
  });

  it('documents its routes with the pack name and a scope', async () => {
    const doc = (await t.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths[PATH])).toEqual(expect.arrayContaining(['get', 'post']));
    expect(Object.keys(doc.paths[`${PATH}/{id}`])).toEqual(expect.arrayContaining(['get', 'patch', 'delete']));
    expect(doc.paths[PATH].post.summary).toBeTruthy();
    expect(t.app.packs.map((p) => p.name)).toContain('template');
  });
});
