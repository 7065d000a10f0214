import { and, eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { definePack } from '../../src/pack.js';
import { authHeader, createTestApp, type TestApp } from '../../test/helpers/app.js';
import { systemConfigHistory } from './table.js';

const PATH = '/system/config';
/** 40 random base62 characters: the shape of a generated secret. */
const RANDOM_TOKEN = ['q8ZrT2vLw9XbN4mK', '7pYc3HsJ6dFg1RaV5eUo0tWi'].join('');
const onPostgres = Boolean(process.env.TEST_DATABASE_URL || process.env.DATABASE_URL);

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

type Body = Record<string, unknown>;
const envQuery = (environment?: string) => (environment ? `?environment=${environment}` : '');
const put = (key: string, body: Body, environment?: string, app?: FastifyInstance) =>
  t.inject({ method: 'PUT', url: `${PATH}/${key}${envQuery(environment)}`, payload: body }, app);
const get = (key: string, environment?: string) => t.inject({ method: 'GET', url: `${PATH}/${key}${envQuery(environment)}` });
const del = (key: string, query = '') => t.inject({ method: 'DELETE', url: `${PATH}/${key}${query}` });
const history = (key: string, query = '') => t.inject({ method: 'GET', url: `${PATH}/${key}/history${query}` });
const rollback = (key: string, body: Body) => t.inject({ method: 'POST', url: `${PATH}/${key}/rollback`, payload: body });

const auditRows = (key: string, environment = 'default') =>
  t.app.db
    .select()
    .from(adminOperations)
    .where(and(eq(adminOperations.targetType, 'config-entry'), eq(adminOperations.targetId, `${key}@${environment}`)))
    .orderBy(adminOperations.id);

describe('config registry (TZ): entries', () => {
  it('creates, reads, changes and deletes an entry; each write is a new version', async () => {
    const created = await put('crud.max_rows', { value: 5000, description: 'rows per export', reason: 'initial' });
    expect(created.statusCode).toBe(201);
    expect(created.headers.location).toBe(`${PATH}/crud.max_rows`);
    const entry = created.json();
    expect(entry).toMatchObject({ key: 'crud.max_rows', environment: 'default', value: 5000, type: 'number', description: 'rows per export', version: 1, updatedBy: expect.stringMatching(/^client:\d+$/) });
    expect(new Date(entry.createdAt).toISOString()).toBe(entry.createdAt);

    expect((await get('crud.max_rows')).json()).toEqual(entry);
    expect((await get('crud.max_rows', 'default')).json()).toEqual(entry);

    // Type and description stay what they were unless the body names them.
    const changed = await put('crud.max_rows', { value: 10000 });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ value: 10000, type: 'number', description: 'rows per export', version: 2, createdAt: entry.createdAt });

    const deleted = await del('crud.max_rows', '?reason=no%20longer%20used');
    expect(deleted.statusCode).toBe(204);
    expect(deleted.body).toBe('');
    const gone = await get('crud.max_rows');
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toMatchObject({ type: '/problems/resource-not-found', key: 'crud.max_rows', environment: 'default' });
    expect((await del('crud.max_rows')).statusCode).toBe(404);

    // Re-created after a delete, the entry continues the version sequence (v3 was the delete).
    const again = await put('crud.max_rows', { value: 1 });
    expect(again.statusCode).toBe(201);
    expect(again.json()).toMatchObject({ version: 4, description: '' });
  });

  it('keeps every JSON type exactly, on both drivers', async () => {
    const values: Array<[string, unknown, string]> = [
      ['types.text', 'héllo "wörld" ✓', 'string'],
      ['types.empty_text', '', 'string'],
      // Strings that are themselves JSON stay strings (drizzle's jsonb would parse them again).
      ['types.json_text', '{"a":1}', 'string'],
      ['types.true_text', 'true', 'string'],
      ['types.null_text', 'null', 'string'],
      ['types.fraction', 0.25, 'number'],
      ['types.negative', -42, 'number'],
      ['types.big', 9007199254740991, 'number'],
      ['types.flag', false, 'boolean'],
      ['types.object', { a: 1, nested: { list: [1, 'two', true], empty: {} }, n: null }, 'json'],
      ['types.array', ['eu-west-1', 'us-east-2'], 'json'],
      ['types.empty_object', {}, 'json'],
    ];
    for (const [key, value, type] of values) {
      const res = await put(key, { value });
      expect(res.statusCode, key).toBe(201);
      expect(res.json(), key).toMatchObject({ value, type });
      expect((await get(key)).json().value, key).toEqual(value);
      expect(t.app.config.get(key), key).toEqual(value);
    }
    // A declared type is checked against the value: a numeric string stays a string.
    expect((await put('types.numeric_text', { value: '42', type: 'string' })).json()).toMatchObject({ value: '42', type: 'string' });
  });

  it('holds one entry per environment; named environments override default in the effective config', async () => {
    expect((await put('eff.region', { value: 'eu-west-1', description: 'primary region' })).statusCode).toBe(201);
    expect((await put('eff.replicas', { value: 2 })).statusCode).toBe(201);
    expect((await put('eff.debug', { value: true })).statusCode).toBe(201);
    const override = await put('eff.replicas', { value: 6, reason: 'more traffic' }, 'production');
    expect(override.statusCode).toBe(201);
    expect(override.headers.location).toBe(`${PATH}/eff.replicas?environment=production`);
    expect(override.json()).toMatchObject({ environment: 'production', version: 1, type: 'number' });
    expect((await put('eff.debug', { value: false }, 'production')).statusCode).toBe(201);
    expect((await put('eff.only_staging', { value: 'x' }, 'staging')).statusCode).toBe(201);

    expect((await get('eff.replicas')).json().value).toBe(2);
    expect((await get('eff.replicas', 'production')).json().value).toBe(6);
    // GET of one environment is that environment's own entry, never the default's.
    expect((await get('eff.region', 'production')).statusCode).toBe(404);

    const prod = await t.inject({ method: 'GET', url: `${PATH}/effective?environment=production&prefix=eff.` });
    expect(prod.statusCode).toBe(200);
    expect(prod.json()).toEqual({
      environment: 'production',
      nextCursor: null,
      items: [
        expect.objectContaining({ key: 'eff.debug', value: false, source: 'production' }),
        expect.objectContaining({ key: 'eff.region', value: 'eu-west-1', source: 'default', description: 'primary region', type: 'string' }),
        expect.objectContaining({ key: 'eff.replicas', value: 6, source: 'production', version: 1 }),
      ],
    });
    const base = (await t.inject({ method: 'GET', url: `${PATH}/effective?prefix=eff.` })).json();
    expect(base.environment).toBe('default');
    expect(base.items.map((i: Body) => [i.key, i.value, i.source])).toEqual([
      ['eff.debug', true, 'default'],
      ['eff.region', 'eu-west-1', 'default'],
      ['eff.replicas', 2, 'default'],
    ]);
    const staging = (await t.inject({ method: 'GET', url: `${PATH}/effective?environment=staging&prefix=eff.` })).json();
    expect(staging.items.map((i: Body) => i.key)).toEqual(['eff.debug', 'eff.only_staging', 'eff.region', 'eff.replicas']);

    // Paged by key with an opaque cursor.
    const keys: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await t.inject({ method: 'GET', url: `${PATH}/effective?environment=production&prefix=eff.&limit=2${cursor ? `&cursor=${cursor}` : ''}` });
      expect(res.statusCode).toBe(200);
      keys.push(...res.json().items.map((i: Body) => i.key));
      cursor = res.json().nextCursor;
      pages++;
    } while (cursor && pages < 5);
    expect(keys).toEqual(['eff.debug', 'eff.region', 'eff.replicas']);
    expect(pages).toBe(2);

    // The accessor gives the same answer from memory.
    expect(t.app.config.get('eff.replicas', 'production')).toBe(6);
    expect(t.app.config.get('eff.region', 'production')).toBe('eu-west-1');
    expect(t.app.config.get('eff.replicas')).toBe(2);
    expect(t.app.config.get('eff.only_staging')).toBeUndefined();
    expect(t.app.config.has('eff.only_staging', 'staging')).toBe(true);
  });

  it('lists entries by key and environment, filtered, with keyset pagination', async () => {
    for (const key of ['list.a', 'list.b', 'list.c']) expect((await put(key, { value: 1 })).statusCode).toBe(201);
    expect((await put('list.b', { value: 2 }, 'production')).statusCode).toBe(201);
    expect((await put('listing.z', { value: 1 })).statusCode).toBe(201);
    expect((await put('listxb.z', { value: 1 })).statusCode).toBe(201);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await t.inject({ method: 'GET', url: `${PATH}?prefix=list.&limit=2${cursor ? `&cursor=${cursor}` : ''}` });
      expect(res.statusCode).toBe(200);
      seen.push(...res.json().items.map((i: Body) => `${i.key}@${i.environment}`));
      cursor = res.json().nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(['list.a@default', 'list.b@default', 'list.b@production', 'list.c@default']);
    expect(pages).toBe(2);

    const prod = (await t.inject({ method: 'GET', url: `${PATH}?environment=production&prefix=list` })).json();
    expect(prod.items.map((i: Body) => i.key)).toEqual(['list.b']);
    // `_` and `.` in a prefix are literal characters.
    expect((await t.inject({ method: 'GET', url: `${PATH}?prefix=list_` })).json().items).toEqual([]);
    const all = (await t.inject({ method: 'GET', url: `${PATH}?limit=500` })).json();
    expect(all.items.map((i: Body) => i.key)).toEqual(expect.arrayContaining(['list.a', 'listing.z', 'listxb.z']));
  });
});

// Issue 10, item 7: the seed's `POST /system/config` answered 405.
describe('config registry (TZ): POST /system/config (the seed\'s create)', () => {
  const post = (body: Body) => t.inject({ method: 'POST', url: PATH, payload: body });

  it('creates an entry from a body with the key: 201 with Location, audited, readable at once', async () => {
    const res = await post({ key: 'seed.max_rows', value: 250, description: 'rows per page', reason: 'seed path' });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers.location).toBe(`${PATH}/seed.max_rows`);
    expect(res.json()).toMatchObject({ key: 'seed.max_rows', environment: 'default', value: 250, type: 'number', description: 'rows per page', version: 1 });
    expect((await get('seed.max_rows')).json()).toEqual(res.json());
    expect(t.app.config.get('seed.max_rows')).toBe(250);
    expect(await auditRows('seed.max_rows')).toEqual([expect.objectContaining({ operation: 'config.create', reason: 'seed path' })]);
    expect((await history('seed.max_rows')).json().items).toEqual([expect.objectContaining({ version: 1, operation: 'create' })]);

    const staged = await post({ key: 'seed.max_rows', environment: 'staging', value: 10 });
    expect(staged.statusCode).toBe(201);
    expect(staged.headers.location).toBe(`${PATH}/seed.max_rows?environment=staging`);
  });

  it('answers 409 when the key already has an entry in that environment, and changes nothing', async () => {
    expect((await post({ key: 'seed.exists', value: 'a' })).statusCode).toBe(201);
    const again = await post({ key: 'seed.exists', value: 'b' });
    expect(again.statusCode).toBe(409);
    expect(again.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(again.json()).toMatchObject({ type: '/problems/conflict', key: 'seed.exists', environment: 'default', currentVersion: 1 });
    expect((await get('seed.exists')).json()).toMatchObject({ value: 'a', version: 1 });
    // A deleted entry can be created again.
    expect((await del('seed.exists', '?reason=gone')).statusCode).toBe(204);
    expect((await post({ key: 'seed.exists', value: 'c' })).statusCode).toBe(201);
  });

  it('refuses what PUT refuses: bad keys and bodies with 400, secrets with 422 pointing into the body', async () => {
    for (const body of [{ value: 1 }, { key: 'nodot', value: 1 }, { key: 'a.b', value: 1, extra: true }, { key: 'a.b' }, { key: 'a.b', value: 1, environment: 'Prod' }]) {
      expect((await post(body)).statusCode, JSON.stringify(body)).toBe(400);
    }
    const named = await post({ key: 'smtp.password', value: 'x' });
    expect(named.statusCode).toBe(422);
    expect(named.json().errors).toEqual([{ in: 'body', pointer: '#/key', message: "names a secret ('password')" }]);
    const valued = await post({ key: 'ci.hook', value: { url: ['https://hooks', '.slack.com/triggers/', 'T0ACME0001/', '1234567890123/', 'ab12'.repeat(8)].join('') } });
    expect(valued.statusCode).toBe(422);
    expect(valued.json().errors).toEqual([expect.objectContaining({ in: 'body', pointer: '#/value/url' })]);
    expect((await get('ci.hook')).statusCode).toBe(404);
  });
});

describe('config registry (TZ): history and rollback', () => {
  it('keeps every version, deletes included, and rolls back by writing a new version', async () => {
    await put('hist.mode', { value: 'fast', description: 'v1', reason: 'first' });
    await put('hist.mode', { value: 'safe', description: 'v2' });
    await put('hist.mode', { value: 'slow', reason: 'third' }, 'staging');
    await put('hist.mode', { value: 'paranoid', description: 'v3' });

    const back = await rollback('hist.mode', { version: 1, reason: 'v2 and v3 broke exports' });
    expect(back.statusCode).toBe(200);
    expect(back.json()).toMatchObject({ key: 'hist.mode', environment: 'default', value: 'fast', description: 'v1', version: 4 });
    expect((await get('hist.mode')).json().value).toBe('fast');
    expect(t.app.config.get('hist.mode')).toBe('fast');

    expect((await del('hist.mode', '?reason=cleanup')).statusCode).toBe(204);

    const all = await history('hist.mode');
    expect(all.statusCode).toBe(200);
    const items = all.json().items;
    expect(items.map((i: Body) => [i.environment, i.version, i.operation])).toEqual([
      ['default', 5, 'delete'],
      ['default', 4, 'rollback'],
      ['default', 3, 'update'],
      ['staging', 1, 'create'],
      ['default', 2, 'update'],
      ['default', 1, 'create'],
    ]);
    const [deleted, rolledBack] = items;
    expect(deleted).toMatchObject({ type: null, description: null, reason: 'cleanup', actor: expect.stringMatching(/^client:\d+$/) });
    expect(deleted).not.toHaveProperty('value');
    expect(rolledBack).toMatchObject({ value: 'fast', restoredVersion: 1, reason: 'v2 and v3 broke exports' });
    expect(typeof rolledBack.correlationId).toBe('string');
    expect(items[5]).toMatchObject({ value: 'fast', type: 'string', description: 'v1', reason: 'first', restoredVersion: null });

    const staging = (await history('hist.mode', '?environment=staging')).json();
    expect(staging.items.map((i: Body) => i.value)).toEqual(['slow']);

    // Paged newest first.
    const page1 = (await history('hist.mode', '?limit=4')).json();
    expect(page1.items).toHaveLength(4);
    const page2 = (await history('hist.mode', `?limit=4&cursor=${page1.nextCursor}`)).json();
    expect(page2.items.map((i: Body) => i.version)).toEqual([2, 1]);
    expect(page2.nextCursor).toBeNull();

    // A version that records a delete has nothing to restore; an unknown version is a 404.
    const toDelete = await rollback('hist.mode', { version: 5 });
    expect(toDelete.statusCode).toBe(422);
    expect(toDelete.json()).toMatchObject({ type: '/problems/unprocessable', detail: expect.stringContaining('deletion') });
    const unknown = await rollback('hist.mode', { version: 99 });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().detail).toContain('No version 99');
    expect((await rollback('hist.mode', { version: 1, environment: 'production' })).statusCode).toBe(404);

    // Rolling back a deleted entry brings it back as a new version.
    const restored = await rollback('hist.mode', { version: 2 });
    expect(restored.statusCode).toBe(200);
    expect(restored.json()).toMatchObject({ value: 'safe', description: 'v2', version: 6 });
    expect((await get('hist.mode')).json().version).toBe(6);
    expect((await history('hist.mode', '?limit=1')).json().items[0]).toMatchObject({ version: 6, operation: 'rollback', restoredVersion: 2 });

    // History of a key never written is an empty page, not an error.
    expect((await history('never.written')).json()).toEqual({ items: [], nextCursor: null });
  });

  it('records each write in admin_operations with before, after and reason, in the write transaction', async () => {
    const res = await put('audit.level', { value: 'info', reason: 'initial' });
    const correlationId = res.headers['x-request-id'];
    await put('audit.level', { value: 'debug', reason: 'investigating' });
    // A refused write leaves no audit entry, no history row and no change.
    expect((await put('audit.level', { value: 5 })).statusCode).toBe(400);
    expect((await put('audit.level', { value: 'info', expectedVersion: 1 })).statusCode).toBe(409);
    await rollback('audit.level', { version: 1, reason: 'done' });
    await del('audit.level', '?reason=retired');

    const rows = await auditRows('audit.level');
    expect(rows.map((r) => [r.operation, r.reason])).toEqual([
      ['config.create', 'initial'],
      ['config.update', 'investigating'],
      ['config.rollback', 'done'],
      ['config.delete', 'retired'],
    ]);
    const [created, updated, rolledBack, deleted] = rows;
    expect(created).toMatchObject({ before: null, after: expect.objectContaining({ value: 'info', version: 1 }), correlationId, result: 'success' });
    expect(updated?.before).toMatchObject({ value: 'info', version: 1 });
    expect(updated?.after).toMatchObject({ value: 'debug', version: 2 });
    expect(rolledBack?.after).toMatchObject({ value: 'info', version: 3, restoredVersion: 1 });
    expect(deleted).toMatchObject({ after: null, before: expect.objectContaining({ value: 'info', version: 3 }) });

    const versions = await t.app.db.select().from(systemConfigHistory).where(eq(systemConfigHistory.key, 'audit.level'));
    expect(versions.map((v) => v.version).sort()).toEqual([1, 2, 3, 4]);
  });
});

describe('config registry (TZ): optimistic concurrency and types', () => {
  it('answers 409 when expectedVersion is not the current version', async () => {
    const v1 = (await put('occ.limit', { value: 1, expectedVersion: 0 })).json();
    expect(v1.version).toBe(1);
    // expectedVersion 0 means "create only".
    const exists = await put('occ.limit', { value: 2, expectedVersion: 0 });
    expect(exists.statusCode).toBe(409);
    expect(exists.json()).toMatchObject({ type: '/problems/conflict', expectedVersion: 0, currentVersion: 1 });

    expect((await put('occ.limit', { value: 2, expectedVersion: 1 })).json().version).toBe(2);
    const stale = await put('occ.limit', { value: 3, expectedVersion: 1 });
    expect(stale.statusCode).toBe(409);
    expect(stale.json().detail).toContain('version 2');
    expect((await get('occ.limit')).json().value).toBe(2);

    expect((await rollback('occ.limit', { version: 1, expectedVersion: 1 })).statusCode).toBe(409);
    expect((await del('occ.limit', '?expectedVersion=1')).statusCode).toBe(409);
    expect((await get('occ.limit')).statusCode).toBe(200);
    expect((await del('occ.limit', '?expectedVersion=2')).statusCode).toBe(204);
    const missing = await put('occ.limit', { value: 4, expectedVersion: 2 });
    expect(missing.statusCode).toBe(409);
    expect(missing.json()).toMatchObject({ currentVersion: null });
  });

  it.skipIf(!onPostgres)('lets exactly one of two concurrent creates with expectedVersion 0 win', async () => {
    const results = await Promise.all([1, 2, 3, 4].map((n) => put('occ.race', { value: n, expectedVersion: 0 })));
    const codes = results.map((r) => r.statusCode).sort();
    expect(codes).toEqual([201, 409, 409, 409]);
    const v = await history('occ.race');
    expect(v.json().items).toHaveLength(1);
  });

  it('checks the value against the type, keeps the type unless changed explicitly, and one type per key', async () => {
    const mismatch = await put('typed.count', { value: 'ten', type: 'number' });
    expect(mismatch.statusCode).toBe(400);
    expect(mismatch.json()).toMatchObject({ type: '/problems/validation-failed' });
    expect(mismatch.json().errors).toEqual([{ in: 'body', pointer: '#/value', message: "must be a number for type 'number', got a string" }]);
    expect((await put('typed.count', { value: 1, type: 'boolean' })).statusCode).toBe(400);
    expect((await put('typed.count', { value: 'x', type: 'json' })).json().errors[0].message).toContain('an object or an array');
    expect((await put('typed.count', { value: null })).json().errors[0].message).toContain('must not be null');
    expect((await put('typed.count', { value: null, type: 'json' })).statusCode).toBe(400);

    expect((await put('typed.count', { value: 10 })).statusCode).toBe(201);
    // The entry is a number now: a string is refused until the type is changed explicitly.
    expect((await put('typed.count', { value: '10' })).statusCode).toBe(400);
    expect((await put('typed.count', { value: '10', type: 'string' })).json()).toMatchObject({ type: 'string', value: '10' });
    expect((await put('typed.count', { value: 10, type: 'number' })).statusCode).toBe(200);

    // Another environment must use the key's type.
    const other = await put('typed.count', { value: 'many' }, 'production');
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ type: '/problems/conflict', environment: 'default', detail: expect.stringContaining("type 'number'") });
    expect((await put('typed.count', { value: 12 }, 'production')).statusCode).toBe(201);
    const retype = await put('typed.count', { value: true, type: 'boolean' });
    expect(retype.statusCode).toBe(409);
    expect(retype.json().environment).toBe('production');
  });
});

describe('config registry (TZ): bad input', () => {
  it('refuses bad key names with 400, and keeps /effective apart from keys', async () => {
    for (const key of ['nodot', 'Upper.case', '1st.key', 'a..b', 'trailing.', '.leading', 'has-dash.key', 'white%20space.key', `a.${'b'.repeat(130)}`, 'effective']) {
      const res = await put(key, { value: 1 });
      expect(res.statusCode, key).toBe(400);
      expect(res.json().errors, key).toContainEqual(expect.objectContaining({ in: 'params', pointer: '#/key' }));
      if (key !== 'effective') expect((await get(key)).statusCode, key).toBe(400);
    }
    expect((await t.inject({ method: 'GET', url: `${PATH}/effective` })).statusCode).toBe(200);
    expect((await history('nodot')).statusCode).toBe(400);
    expect((await rollback('nodot', { version: 1 })).statusCode).toBe(400);
  });

  it('refuses unknown fields, bad environments, oversized and deep values, forbidden keys with 400', async () => {
    const unknown = await put('bad.input', { value: 1, colour: 'red' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().errors).toContainEqual(expect.objectContaining({ in: 'body', pointer: '#/colour' }));
    expect((await put('bad.input', { type: 'number' })).json().errors).toContainEqual(expect.objectContaining({ pointer: '#/value', message: 'is required' }));
    expect((await put('bad.input', { value: 1, type: 'integer' })).statusCode).toBe(400);
    expect((await put('bad.input', { value: 1, description: 'd'.repeat(1001) })).statusCode).toBe(400);
    expect((await put('bad.input', { value: 1, reason: '' })).statusCode).toBe(400);
    expect((await put('bad.input', { value: 1, expectedVersion: -1 })).statusCode).toBe(400);
    expect((await rollback('bad.input', { version: 0 })).statusCode).toBe(400);
    expect((await rollback('bad.input', { version: 1, value: 2 })).statusCode).toBe(400);
    expect((await rollback('bad.input', {})).statusCode).toBe(400);

    for (const environment of ['Production', 'prod_eu', '-x', 'e'.repeat(33), '']) {
      const res = await t.inject({ method: 'PUT', url: `${PATH}/bad.input?environment=${environment}`, payload: { value: 1 } });
      expect(res.statusCode, environment).toBe(400);
    }
    expect((await t.inject({ method: 'GET', url: `${PATH}/bad.input?env=production` })).statusCode).toBe(400);
    expect((await rollback('bad.input', { version: 1, environment: 'Prod' })).statusCode).toBe(400);

    const oversized = await put('bad.input', { value: 'x'.repeat(64 * 1024) });
    expect(oversized.statusCode).toBe(400);
    expect(oversized.json().errors[0]).toMatchObject({ pointer: '#/value', message: expect.stringContaining('65536') });
    expect((await put('bad.input', { value: 'x'.repeat(64 * 1024 - 2) })).statusCode).toBe(201);
    expect((await del('bad.input')).statusCode).toBe(204);

    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const tooDeep = await put('bad.input', { value: deep });
    expect(tooDeep.statusCode).toBe(400);
    expect(tooDeep.json().errors[0].message).toContain('deeper than 32');

    // `__proto__` is refused by the body parser; `constructor` and `prototype` by the value rules.
    const proto = await t.inject({ method: 'PUT', url: `${PATH}/bad.input`, headers: { 'content-type': 'application/json' }, payload: '{"value":{"a":{"__proto__":{"polluted":true}}}}' });
    expect(proto.statusCode).toBe(400);
    expect(proto.json().type).toBe('/problems/malformed-request');
    const ctor = await put('bad.input', { value: { list: [{ constructor: 'x' }] } });
    expect(ctor.statusCode).toBe(400);
    expect(ctor.json().errors[0]).toMatchObject({ pointer: '#/value/list/0/constructor' });
    expect((await put('bad.input', { value: { prototype: {} } })).statusCode).toBe(400);
    // JSON.parse turns 1e999 into Infinity; it is not a number a config can hold.
    const inf = await t.inject({ method: 'PUT', url: `${PATH}/bad.input`, headers: { 'content-type': 'application/json' }, payload: '{"value":{"n":1e999}}' });
    expect(inf.statusCode).toBe(400);
    expect(inf.json().errors[0]).toMatchObject({ pointer: '#/value/n', message: 'must be a finite number' });

    const notJson = await t.inject({ method: 'PUT', url: `${PATH}/bad.input`, headers: { 'content-type': 'text/plain' }, payload: 'value=1' });
    expect(notJson.statusCode).toBe(415);
    expect((await get('bad.input')).statusCode).toBe(404);
  });

  it('refuses bad list and history queries with 400', async () => {
    for (const url of [
      `${PATH}?limit=0`,
      `${PATH}?limit=501`,
      `${PATH}?sort=key`,
      `${PATH}?prefix=UPPER`,
      `${PATH}?environment=BAD`,
      `${PATH}?cursor=bogus`,
      `${PATH}?cursor=${Buffer.from(JSON.stringify([1, 2])).toString('base64url')}`,
      `${PATH}/effective?cursor=${Buffer.from(JSON.stringify([1])).toString('base64url')}`,
      `${PATH}/effective?cursor=${Buffer.from(JSON.stringify(["x') or 1=1 --"])).toString('base64url')}`,
      `${PATH}?cursor=${Buffer.from(JSON.stringify(['a.b', 'BAD ENV'])).toString('base64url')}`,
      `${PATH}/effective?environment=a_b`,
      `${PATH}/some.key/history?cursor=${Buffer.from(JSON.stringify(['x'])).toString('base64url')}`,
      `${PATH}/some.key/history?limit=1e999`,
    ]) {
      const res = await t.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(400);
      expect(res.headers['content-type'], url).toMatch(/^application\/problem\+json/);
    }
  });
});

describe('config registry (TZ): secrets are refused with 422', () => {
  const refused = async (key: string, body: Body, rule: string, pointer: string) => {
    const res = await put(key, body);
    expect(res.statusCode, key).toBe(422);
    const problem = res.json();
    expect(problem.type).toBe('/problems/unprocessable');
    expect(problem.detail).toMatch(/^Refused: /);
    expect(problem.detail).toMatch(/holds no secrets.*environment variable or a secret manager/);
    expect(problem.rules).toContain(rule);
    expect(problem.errors).toContainEqual(expect.objectContaining({ pointer }));
    expect((await get(key)).statusCode, key).toBe(404);
    expect((await history(key)).json().items, key).toEqual([]);
    return problem;
  };

  it('refuses secret-looking key names and explains why', async () => {
    const problem = await refused('smtp.password', { value: 'x' }, 'secret-name', '#/key');
    expect(problem.detail).toMatch(/^Refused: the key 'smtp\.password' names a secret \('password'\)\. /);
    expect(problem.errors).toEqual([{ in: 'params', pointer: '#/key', message: "names a secret ('password')" }]);
    await refused('github.token', { value: 'SEE_ENV' }, 'secret-name', '#/key');
    await refused('tls.private_key', { value: 'path' }, 'secret-name', '#/key');
    await refused('stripe.api_key', { value: 'x' }, 'secret-name', '#/key');
    await refused('ldap.credentials', { value: { user: 'x' } }, 'secret-name', '#/key');
    // Naming where a secret lives is what the registry is for.
    expect((await put('smtp.password_env', { value: 'SMTP_PASSWORD' })).statusCode).toBe(201);
    expect((await put('auth.password_min_length', { value: 12 })).statusCode).toBe(201);
  });

  it('refuses credential formats and random-looking tokens anywhere in a value, without echoing them', async () => {
    const aws = ['AKIA', 'IOSFODNN7EXAMPLE'].join('');
    const problem = await refused('integrations.aws', { value: { region: 'eu-west-1', accessKeyId: aws } }, 'aws-access-key-id', '#/value/accessKeyId');
    expect(JSON.stringify(problem)).not.toContain(aws);
    expect(problem.detail).toMatch(/^Refused: the value's field \/accessKeyId looks like an AWS access key id\. /);
    await refused('integrations.db', { value: ['postgres://app:', 'hunter2', '@db:5432/app'].join('') }, 'password-in-a-url', '#/value');
    await refused('integrations.hooks', { value: [{ url: 'https://example.com/a' }, { headers: { 'x-signature': RANDOM_TOKEN } }] }, 'high-entropy', '#/value/1/headers/x-signature');
    await refused('integrations.nested', { value: { smtp: { password: 'x' } } }, 'secret-name', '#/value/smtp/password');
    const jwt = ['eyJ', 'hbGciOiJIUzI1NiJ9.', 'eyJ', 'zdWIiOiIxIn0.', 'sig'].join('');
    expect((await refused('integrations.session', { value: jwt }, 'json-web-token', '#/value')).detail).toMatch(/^Refused: the value looks like a JSON Web Token\. /);
    await refused('integrations.key', { value: { pem: ['-----BEGIN ', 'EC PRIVATE KEY-----'].join('') } }, 'private-key-pem', '#/value/pem');
    await refused('integrations.admin', { value: t.adminKey }, 'valhalla-api-key', '#/value');

    // Ordinary configuration passes.
    const ok = await put('integrations.public', {
      value: { url: 'https://api.example.com/v2/events?region=eu', host: 'db.internal.eu-west-1.example.com', id: '0b5e7f2a-5b0c-4c8e-9d3a-1f2e3d4c5b6a', note: 'Exports run nightly at 02:00 UTC and retry three times.' },
    });
    expect(ok.statusCode).toBe(201);
  });

  // Issue 10, item 4: these were stored with 201.
  it('refuses Slack workflow and trigger webhook URLs and other gitleaks families', async () => {
    const digits = (n: number) => Array.from({ length: n }, (_, i) => String((i * 7 + 3) % 10)).join('');
    const workflow = ['https://hooks', '.slack.com/workflows/', 'T0ACME0001/', 'A0FLOW0001/', digits(18), '/', RANDOM_TOKEN.slice(0, 24)].join('');
    const trigger = ['https://hooks', '.slack.com/triggers/', 'T0ACME0001/', digits(13), '/', 'ab12'.repeat(8)].join('');
    await refused('alerts.slack_workflow', { value: workflow }, 'slack-webhook', '#/value');
    await refused('alerts.slack_trigger', { value: { url: trigger } }, 'slack-webhook', '#/value/url');
    await refused('llm.anthropic', { value: ['sk-', 'ant-api03-', 'x'.repeat(93), 'AA'].join('') }, 'anthropic-api-key', '#/value');
    await refused('ci.vault', { value: ['hv', 's.', RANDOM_TOKEN, RANDOM_TOKEN, RANDOM_TOKEN].join('') }, 'hashicorp-vault-token', '#/value');
  });

  it('refuses a secret that reaches an existing entry or a rollback, and counts refusals', async () => {
    expect((await put('guard.webhook', { value: 'https://example.com/hook' })).statusCode).toBe(201);
    const res = await put('guard.webhook', { value: ['https://hooks.slack.com/services/', 'T0000/B0000/', 'abcdefghijklmnop1234'].join('') });
    expect(res.statusCode).toBe(422);
    expect(res.json().rules).toEqual(['slack-webhook']);
    expect((await get('guard.webhook')).json().version).toBe(1);
    const metrics = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/valhalla_config_secret_refusals_total\{rule="slack-webhook"[^}]*\} [1-9]/);
  });
});

describe('config registry (TZ): app.config for packs', () => {
  it('answers from memory, updated at once on the writing instance, and calls change listeners', async () => {
    const seen: Array<[unknown, unknown]> = [];
    const off = t.app.config.onChange<number>('hot.timeout_ms', (value, previous) => seen.push([value, previous]));
    expect(t.app.config.environment).toBe('default');
    expect(t.app.config.get('hot.timeout_ms')).toBeUndefined();

    await put('hot.timeout_ms', { value: 250 });
    expect(t.app.config.get<number>('hot.timeout_ms')).toBe(250);
    await put('hot.timeout_ms', { value: 500 });
    // An unrelated key and an override in another environment do not call the listener.
    await put('hot.other', { value: 1 });
    await put('hot.timeout_ms', { value: 900 }, 'production');
    expect(t.app.config.get('hot.timeout_ms')).toBe(500);
    expect(t.app.config.get('hot.timeout_ms', 'production')).toBe(900);
    await del('hot.timeout_ms');
    expect(t.app.config.get('hot.timeout_ms')).toBeUndefined();
    expect(t.app.config.get('hot.timeout_ms', 'production')).toBe(900);
    off();
    await put('hot.timeout_ms', { value: 1 });
    expect(seen).toEqual([
      [250, undefined],
      [500, 250],
      [undefined, 500],
    ]);

    // Values handed out are frozen: one pack cannot change what another reads.
    await put('hot.shape', { value: { list: [1, 2] } });
    const shape = t.app.config.get<{ list: number[] }>('hot.shape');
    expect(() => shape?.list.push(3)).toThrow(TypeError);
    expect(t.app.config.get('hot.shape')).toEqual({ list: [1, 2] });
  });

  it('sends no database query to read config, in a loop or on requests', async () => {
    await put('probe.greeting', { value: 'hello' });
    const probe = definePack({
      name: 'config-probe',
      code: 'ZZ',
      description: 'reads app.config on every request (test only)',
      dependencies: ['config-registry'],
      routes: async (app) => {
        app.get(
          '/config-probe',
          { config: { scope: 'config:read' }, schema: { tags: ['test'], summary: 'config probe', response: { 200: { type: 'object', properties: { greeting: { type: 'string' } } } } } },
          async () => ({ greeting: app.config.get<string>('probe.greeting') }),
        );
      },
    });
    // Authenticated requests, as in production; sampled spans and last-used stamps are batched
    // writes on a timer, kept out of this window so that only a per-request query could count.
    const app = await t.another({ TRACE_SAMPLE_RATE: 0, BATCH_FLUSH_INTERVAL_MS: 60_000 }, { extraPacks: [probe] });
    const before = app.database.queryCount;
    let total = 0;
    for (let i = 0; i < 100_000; i++) total += app.config.get<string>('probe.greeting')?.length ?? 0;
    expect(total).toBe(500_000);
    for (let i = 0; i < 50; i++) {
      const res = await t.inject({ method: 'GET', url: '/config-probe' }, app);
      expect(res.json()).toEqual({ greeting: 'hello' });
    }
    expect(app.database.queryCount - before).toBe(0);
  });

  it('shows entry counts in the admin overview', async () => {
    const overview = await t.app.overview.read();
    expect(overview.config).toMatchObject({ environment: 'default', entries: expect.any(Number), byEnvironment: expect.objectContaining({ default: expect.any(Number) }) });
    expect((overview.config as { entries: number }).entries).toBeGreaterThan(5);
  });

  describe.skipIf(!onPostgres)('on several instances (PostgreSQL)', () => {
    it("reaches another instance within a second, with that instance's environment", async () => {
      const production = await t.another({ CONFIG_ENVIRONMENT: 'production' });
      expect(production.config.environment).toBe('production');
      const changes: unknown[] = [];
      production.config.onChange('multi.batch_size', (value) => changes.push(value));

      await put('multi.batch_size', { value: 100 });
      await vi.waitFor(() => expect(production.config.get('multi.batch_size')).toBe(100), { timeout: 1000, interval: 10 });

      await put('multi.batch_size', { value: 400 }, 'production');
      await vi.waitFor(() => expect(production.config.get('multi.batch_size')).toBe(400), { timeout: 1000, interval: 10 });
      expect(t.app.config.get('multi.batch_size')).toBe(100);

      // A write through the production instance reaches the first one too.
      expect((await put('multi.batch_size', { value: 150 }, undefined, production)).statusCode).toBe(200);
      await vi.waitFor(() => expect(t.app.config.get('multi.batch_size')).toBe(150), { timeout: 1000, interval: 10 });

      await t.inject({ method: 'DELETE', url: `${PATH}/multi.batch_size?environment=production` });
      await vi.waitFor(() => expect(production.config.get('multi.batch_size')).toBe(150), { timeout: 1000, interval: 10 });
      expect(changes).toEqual([100, 400, 150]);
    });
  });
});

describe('config registry (TZ): access', () => {
  it('answers 401 without a key and 403 without the scope; config:read reads, config:write writes', async () => {
    expect((await put('access.level', { value: 1 })).statusCode).toBe(201);
    for (const [method, url, payload] of [
      ['GET', PATH],
      ['GET', `${PATH}/effective`],
      ['GET', `${PATH}/access.level`],
      ['GET', `${PATH}/access.level/history`],
      ['PUT', `${PATH}/access.level`, { value: 2 }],
      ['DELETE', `${PATH}/access.level`],
      ['POST', `${PATH}/access.level/rollback`, { version: 1 }],
    ] as const) {
      const res = await t.app.inject({ method, url, payload });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      expect(res.json().type).toBe('/problems/unauthorized');
    }

    const reader = authHeader((await t.keyWith(['config:read'])).token);
    expect((await t.inject({ method: 'GET', url: `${PATH}/access.level`, headers: reader })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: `${PATH}/effective?environment=production`, headers: reader })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: `${PATH}/access.level/history`, headers: reader })).statusCode).toBe(200);
    for (const [method, url, payload] of [
      ['PUT', `${PATH}/access.level`, { value: 2 }],
      ['DELETE', `${PATH}/access.level`],
      ['POST', `${PATH}/access.level/rollback`, { version: 1 }],
    ] as const) {
      const res = await t.inject({ method, url, payload, headers: reader });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.json().type).toBe('/problems/forbidden');
    }
    expect((await t.inject({ method: 'GET', url: `${PATH}/access.level/history`, headers: authHeader((await t.keyWith(['flags:read'])).token) })).statusCode).toBe(403);

    const writerKey = await t.keyWith(['config:write']);
    const written = await t.inject({ method: 'PUT', url: `${PATH}/access.level`, payload: { value: 3 }, headers: authHeader(writerKey.token) });
    expect(written.statusCode).toBe(200);
    expect(written.json()).toMatchObject({ value: 3, version: 2, updatedBy: `client:${writerKey.clientId}` });
    // config:write includes config:read.
    expect((await t.inject({ method: 'GET', url: PATH, headers: authHeader(writerKey.token) })).statusCode).toBe(200);
    const [audit] = (await auditRows('access.level')).slice(-1);
    expect(audit).toMatchObject({ actorType: 'client', actorId: String(writerKey.clientId), keyId: writerKey.keyId });
  });
});

describe('config registry (TZ): documentation', () => {
  it('documents every route with a scope; writes are subject to the change freeze', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths[PATH]).sort()).toEqual(['get', 'post']);
    expect(Object.keys(doc.paths[`${PATH}/effective`])).toEqual(['get']);
    expect(Object.keys(doc.paths[`${PATH}/{key}`]).sort()).toEqual(['delete', 'get', 'put']);
    expect(Object.keys(doc.paths[`${PATH}/{key}/history`])).toEqual(['get']);
    expect(Object.keys(doc.paths[`${PATH}/{key}/rollback`])).toEqual(['post']);
    const routes = t.app.routeCatalog.filter((r) => r.pack === 'config-registry' && r.method !== 'HEAD');
    expect(routes).toHaveLength(8);
    for (const r of routes) expect(r.scope, `${r.method} ${r.url}`).toBe(r.method === 'GET' ? 'config:read' : 'config:write');
  });
});
