import { and, eq } from 'drizzle-orm';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminOperations } from '../../src/audit/table.js';
import { authHeader, createTestApp, type TestApp } from '../../test/helpers/app.js';
import type { EvaluationContext } from './evaluate.js';

const PATH = '/system/flags';

let t: TestApp;
beforeAll(async () => {
  // No sampled spans and no batch flush (key last-use times) during the no-query test: those
  // background inserts would count as queries that no request made.
  t = await createTestApp({ TRACE_SAMPLE_RATE: 0, BATCH_FLUSH_INTERVAL_MS: 60_000 });
});
afterAll(async () => t?.close());

const create = (body: Record<string, unknown>, on?: FastifyInstance) => t.inject({ method: 'POST', url: PATH, payload: body }, on);
const patch = (key: string, body: Record<string, unknown>, on?: FastifyInstance) => t.inject({ method: 'PATCH', url: `${PATH}/${key}`, payload: body }, on);
const evaluate = (body: Record<string, unknown>, on?: FastifyInstance) => t.inject({ method: 'POST', url: `${PATH}/evaluate`, payload: body }, on);

async function created(body: Record<string, unknown>) {
  const res = await create(body);
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

const auditRows = (key: string) =>
  t.app.db
    .select()
    .from(adminOperations)
    .where(and(eq(adminOperations.targetType, 'feature-flag'), eq(adminOperations.targetId, key)))
    .orderBy(adminOperations.id);

describe('feature flags (UA): CRUD', () => {
  it('creates, reads, changes and deletes a flag; each write is audited with before/after', async () => {
    const res = await create({ key: 'crud.flag', description: 'first', type: 'release', enabled: true, rolloutPercentage: 33.3 });
    expect(res.statusCode).toBe(201);
    const flag = res.json();
    expect(res.headers.location).toBe(`${PATH}/crud.flag`);
    expect(flag).toMatchObject({
      key: 'crud.flag',
      description: 'first',
      type: 'release',
      enabled: true,
      rolloutPercentage: 33.3,
      variants: [],
      rules: [],
      prerequisites: [],
      defaultValue: false,
      offValue: false,
      version: 1,
    });
    expect(new Date(flag.createdAt).toISOString()).toBe(flag.createdAt);

    const read = await t.inject({ method: 'GET', url: `${PATH}/crud.flag` });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual(flag);

    const changed = await patch('crud.flag', { enabled: false, expectedVersion: 1 });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ enabled: false, version: 2, rolloutPercentage: 33.3, createdAt: flag.createdAt });

    const deleted = await t.inject({ method: 'DELETE', url: `${PATH}/crud.flag` });
    expect(deleted.statusCode).toBe(204);
    expect(deleted.body).toBe('');
    expect((await t.inject({ method: 'GET', url: `${PATH}/crud.flag` })).statusCode).toBe(404);

    const rows = await auditRows('crud.flag');
    expect(rows.map((r) => r.operation)).toEqual(['feature-flag.create', 'feature-flag.update', 'feature-flag.delete']);
    expect(rows[0]).toMatchObject({ before: null, after: flag, correlationId: res.headers['x-request-id'] });
    expect(rows[1]?.before).toMatchObject({ enabled: true, version: 1 });
    expect(rows[1]?.after).toMatchObject({ enabled: false, version: 2 });
    expect(rows[2]).toMatchObject({ after: null, before: expect.objectContaining({ key: 'crud.flag', version: 2 }) });
  });

  it('stores variants, rules, prerequisites and JSON values as given', async () => {
    await created({ key: 'store.base', enabled: true, rolloutPercentage: 100 });
    const body = {
      key: 'store.full',
      type: 'experiment',
      enabled: true,
      rolloutPercentage: 12.345,
      variants: [
        { key: 'control', weight: 50, value: { layout: 'old' } },
        { key: 'treatment', weight: 50, value: { layout: 'new', columns: [1, 2] } },
      ],
      rules: [
        { attribute: 'country', operator: 'in', values: ['NZ', 'AU'], variant: 'treatment' },
        { attribute: 'appVersion', operator: 'semver_gte', values: ['2.0.0'], rolloutPercentage: 50 },
        { attribute: 'age', operator: 'gt', values: [18] },
      ],
      prerequisites: [{ flagKey: 'store.base', variant: 'on' }],
      defaultValue: { layout: 'old' },
      offValue: null,
    };
    const flag = await created(body);
    const { key: _key, ...rest } = body;
    expect(flag).toMatchObject(rest);
    expect((await t.inject({ method: 'GET', url: `${PATH}/store.full` })).json()).toEqual(flag);
  });

  it('answers 404 for an unknown flag on read, change, delete and evaluate', async () => {
    for (const [method, url, payload] of [
      ['GET', `${PATH}/no.such.flag`],
      ['PATCH', `${PATH}/no.such.flag`, { enabled: true }],
      ['DELETE', `${PATH}/no.such.flag`],
      ['GET', `${PATH}/no.such.flag/evaluate?subject=u1`],
    ] as const) {
      const res = await t.inject({ method, url, payload });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ type: '/problems/resource-not-found', key: 'no.such.flag' });
    }
  });

  it('answers 409 for a duplicate key, a stale expectedVersion, and deleting a prerequisite', async () => {
    await created({ key: 'dup.flag' });
    const again = await create({ key: 'dup.flag' });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ type: '/problems/conflict', key: 'dup.flag' });

    expect((await patch('dup.flag', { description: 'v2' })).json().version).toBe(2);
    const stale = await patch('dup.flag', { description: 'v3?', expectedVersion: 1 });
    expect(stale.statusCode).toBe(409);
    expect(stale.json()).toMatchObject({ type: '/problems/conflict', currentVersion: 2 });
    expect((await t.inject({ method: 'GET', url: `${PATH}/dup.flag` })).json()).toMatchObject({ description: 'v2', version: 2 });

    await created({ key: 'dep.child', prerequisites: [{ flagKey: 'dup.flag' }] });
    const del = await t.inject({ method: 'DELETE', url: `${PATH}/dup.flag` });
    expect(del.statusCode).toBe(409);
    expect(del.json()).toMatchObject({ dependents: ['dep.child'] });
    expect((await t.inject({ method: 'GET', url: `${PATH}/dup.flag` })).statusCode).toBe(200);
    // The refused delete left no audit entry.
    expect((await auditRows('dup.flag')).map((r) => r.operation)).toEqual(['feature-flag.create', 'feature-flag.update']);
  });

  it('rejects malformed input with 400 problems that point at the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ key: 'Upper' }, '#/key'],
      [{ key: '-leading' }, '#/key'],
      [{ key: 'has space' }, '#/key'],
      [{ key: 'k'.repeat(129) }, '#/key'],
      [{ key: 'ok.key', colour: 'red' }, '#/colour'],
      [{ key: 'ok.key', type: 'permanent' }, '#/type'],
      [{ key: 'ok.key', rolloutPercentage: 101 }, '#/rolloutPercentage'],
      [{ key: 'ok.key', rolloutPercentage: -1 }, '#/rolloutPercentage'],
      [{ key: 'ok.key', enabled: 'yes' }, '#/enabled'],
      [{ key: 'ok.key', rules: [{ attribute: 'a', operator: 'matches', values: ['x'] }] }, '#/rules/0/operator'],
      [{ key: 'ok.key', rules: [{ attribute: 'a', operator: 'in', values: [] }] }, '#/rules/0/values'],
      [{ key: 'ok.key', rules: [{ attribute: 'a', operator: 'in', values: ['x'], extra: 1 }] }, '#/rules/0/extra'],
      [{ key: 'ok.key', rules: [{ attribute: 'a', operator: 'in', values: [{ x: 1 }] }] }, '#/rules/0/values/0'],
      [{ key: 'ok.key', rules: [{ attribute: 'a', operator: 'in', values: ['x'], rolloutPercentage: 100.5 }] }, '#/rules/0/rolloutPercentage'],
      [{ key: 'ok.key', variants: [{ key: 'a', weight: 100, value: 1, colour: 'x' }] }, '#/variants/0/colour'],
      [{ key: 'ok.key', variants: [{ key: 'a', weight: -5, value: 1 }] }, '#/variants/0/weight'],
      [{ key: 'ok.key', variants: [{ key: 'A B', weight: 100, value: 1 }] }, '#/variants/0/key'],
      [{ key: 'ok.key', variants: [{ key: 'a', weight: 100 }] }, '#/variants/0/value'],
      [{ key: 'ok.key', prerequisites: [{ flagKey: 'BAD' }] }, '#/prerequisites/0/flagKey'],
      [{ key: 'ok.key', description: 'd'.repeat(1001) }, '#/description'],
    ];
    for (const [body, pointer] of cases) {
      const res = await create(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().type).toBe('/problems/validation-failed');
      expect(res.json().errors, JSON.stringify(body)).toContainEqual(expect.objectContaining({ pointer }));
    }
    await created({ key: 'patch.target' });
    expect((await patch('patch.target', {})).statusCode).toBe(400);
    expect((await patch('patch.target', { key: 'renamed' })).statusCode).toBe(400);
    expect((await patch('patch.target', { expectedVersion: 0 })).statusCode).toBe(400);
    expect((await patch('patch.target', { expectedVersion: 1 })).statusCode).toBe(400);
    expect((await t.inject({ method: 'GET', url: `${PATH}/patch.target` })).json().version).toBe(1);
    for (const key of ['UPPER', '-x', 'k'.repeat(129)]) expect((await t.inject({ method: 'GET', url: `${PATH}/${key}` })).statusCode, key).toBe(400);
  });

  it('refuses what JSON Schema cannot check with 422 naming the field', async () => {
    await created({ key: 'v.base', variants: [{ key: 'x', weight: 100, value: 1 }], defaultValue: 0 });
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ variants: [{ key: 'a', weight: 60, value: 1 }, { key: 'b', weight: 30, value: 2 }] }, '#/variants'],
      [{ variants: [{ key: 'a', weight: 50, value: 1 }, { key: 'a', weight: 50, value: 2 }] }, '#/variants/1/key'],
      [{ rolloutPercentage: 33.3333 }, '#/rolloutPercentage'],
      [{ variants: [{ key: 'a', weight: 33.3333, value: 1 }, { key: 'b', weight: 66.6667, value: 2 }] }, '#/variants/0/weight'],
      [{ rules: [{ attribute: 'a', operator: 'in', values: ['x'], variant: 'nope' }] }, '#/rules/0/variant'],
      [{ rules: [{ attribute: 'a', operator: 'equals', values: ['x', 'y'] }] }, '#/rules/0/values'],
      [{ rules: [{ attribute: 'a', operator: 'gt', values: ['ten'] }] }, '#/rules/0/values'],
      [{ rules: [{ attribute: 'a', operator: 'semver_gt', values: ['1.2'] }] }, '#/rules/0/values'],
      [{ rules: [{ attribute: 'a', operator: 'in', values: ['x'], rolloutPercentage: 1.0001 }] }, '#/rules/0/rolloutPercentage'],
      [{ prerequisites: [{ flagKey: 'no.such.flag' }] }, '#/prerequisites/0/flagKey'],
      [{ prerequisites: [{ flagKey: 'v.base', variant: 'y' }] }, '#/prerequisites/0/variant'],
      [{ prerequisites: [{ flagKey: 'v.base' }, { flagKey: 'v.base' }] }, '#/prerequisites/1/flagKey'],
      [{ defaultValue: true }, '#/defaultValue'],
      [{ offValue: 'x' }, '#/offValue'],
      [{ variants: [{ key: 'a', weight: 100, value: 'x'.repeat(20_000) }] }, '#/variants/0/value'],
    ];
    for (const [body, pointer] of cases) {
      const res = await create({ key: 'bad.flag', ...body });
      expect(res.statusCode, JSON.stringify(body)).toBe(422);
      expect(res.json().type).toBe('/problems/unprocessable');
      expect(res.json().errors, JSON.stringify(body)).toContainEqual(expect.objectContaining({ pointer }));
    }
    expect((await t.inject({ method: 'GET', url: `${PATH}/bad.flag` })).statusCode).toBe(404);
    expect((await patch('v.base', { prerequisites: [{ flagKey: 'v.base' }] })).json().errors).toContainEqual(expect.objectContaining({ pointer: '#/prerequisites/0/flagKey' }));
  });

  // Issue 10, item 3: `v2.0.0` was accepted (201) because the semver package allows a `v`.
  it.each(['v2.0.0', 'V2.0.0', '=2.0.0', ' 2.0.0', '2.0.0 ', '\t2.0.0', '2.0.0\n', '02.0.0', '2.0.0-01', '2.0.0+', '2.0.0-', '1.2.3.4', '99999999999999999.0.0'])(
    'refuses the rule value %j, which is not a SemVer 2.0.0 version, with 422',
    async (version) => {
      const res = await create({ key: 'bad.semver', rules: [{ attribute: 'appVersion', operator: 'semver_eq', values: [version] }] });
      expect(res.statusCode, res.body).toBe(422);
      expect(res.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/rules/0/values' }));
    },
  );

  it('accepts SemVer 2.0.0 versions with pre-release and build parts', async () => {
    for (const [i, version] of ['2.0.0', '0.0.0', '1.0.0-alpha-a.b-c.0.x7', '1.0.0-0A.is.legal+build.01.sha-5114f85'].entries()) {
      await created({ key: `good.semver.${i}`, rules: [{ attribute: 'appVersion', operator: 'semver_gte', values: [version] }] });
    }
  });

  it('refuses prerequisite cycles with 422, and variant changes that a dependent needs', async () => {
    await created({ key: 'cyc.a' });
    await created({ key: 'cyc.b', prerequisites: [{ flagKey: 'cyc.a' }] });
    await created({ key: 'cyc.c', prerequisites: [{ flagKey: 'cyc.b' }] });
    const cycle = await patch('cyc.a', { prerequisites: [{ flagKey: 'cyc.c' }] });
    expect(cycle.statusCode).toBe(422);
    expect(cycle.json().errors).toContainEqual(expect.objectContaining({ pointer: '#/prerequisites', message: expect.stringMatching(/cycle/) }));
    expect((await t.inject({ method: 'GET', url: `${PATH}/cyc.a` })).json().prerequisites).toEqual([]);

    await created({ key: 'needs.variant.parent', variants: [{ key: 'x', weight: 100, value: 1 }] });
    await created({ key: 'needs.variant.child', prerequisites: [{ flagKey: 'needs.variant.parent', variant: 'x' }] });
    const drop = await patch('needs.variant.parent', { variants: [{ key: 'y', weight: 100, value: 1 }] });
    expect(drop.statusCode).toBe(422);
    expect(drop.json().detail).toMatch(/needs\.variant\.child/);
  });

  it('turns a variant flag into a boolean one: its values become false', async () => {
    await created({ key: 'to.boolean', variants: [{ key: 'a', weight: 100, value: 'A' }], defaultValue: 'none', offValue: 'off' });
    const res = await patch('to.boolean', { variants: [] });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ variants: [], defaultValue: false, offValue: false });
    expect((await patch('to.boolean', { variants: [{ key: 'a', weight: 100, value: 'A' }], defaultValue: 'none' })).json()).toMatchObject({ defaultValue: 'none', offValue: false });
  });

  it('pages through a filtered list (type, enabled, keyPrefix) with an opaque cursor', async () => {
    const keys = ['list.a', 'list.b', 'list.c', 'list.d', 'list.e'];
    for (const key of keys) await created({ key, type: 'operational', enabled: key !== 'list.c' });
    await created({ key: 'listx', type: 'operational' });
    await created({ key: 'list_y', type: 'kill-switch' });

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `${PATH}?keyPrefix=list.&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await t.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      seen.push(...res.json().items.map((i: { key: string }) => i.key));
      cursor = res.json().nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(keys);
    expect(pages).toBe(3);

    const enabledOps = (await t.inject({ method: 'GET', url: `${PATH}?type=operational&enabled=true&limit=500` })).json().items.map((i: { key: string }) => i.key);
    expect(enabledOps).toEqual(['list.a', 'list.b', 'list.d', 'list.e']);
    expect((await t.inject({ method: 'GET', url: `${PATH}?keyPrefix=list_` })).json().items.map((i: { key: string }) => i.key)).toEqual(['list_y']);

    for (const url of [`${PATH}?limit=501`, `${PATH}?type=other`, `${PATH}?enabled=maybe`, `${PATH}?sort=key`, `${PATH}?keyPrefix=UP`]) {
      expect((await t.inject({ method: 'GET', url })).statusCode, url).toBe(400);
    }
    expect((await t.inject({ method: 'GET', url: `${PATH}?cursor=bogus` })).json().type).toBe('/problems/invalid-cursor');
    const altered = Buffer.from(JSON.stringify(['1 or 1=1'])).toString('base64url');
    expect((await t.inject({ method: 'GET', url: `${PATH}?cursor=${altered}` })).json().type).toBe('/problems/invalid-cursor');
  });
});

describe('feature flags (UA): evaluation endpoints', () => {
  beforeAll(async () => {
    await created({ key: 'eval.base', enabled: true, rolloutPercentage: 100 });
    await created({
      key: 'eval.checkout',
      enabled: true,
      rolloutPercentage: 0,
      rules: [
        { attribute: 'country', operator: 'in', values: ['NZ'] },
        { attribute: 'groups', operator: 'in', values: ['beta'] },
      ],
      prerequisites: [{ flagKey: 'eval.base' }],
    });
    await created({
      key: 'eval.colour',
      enabled: true,
      rolloutPercentage: 100,
      variants: [
        { key: 'blue', weight: 50, value: '#00f' },
        { key: 'red', weight: 50, value: '#f00' },
      ],
      defaultValue: '#000',
    });
  });

  it('POST /system/flags/evaluate: many flags for one context, unknown keys as ERROR entries', async () => {
    const res = await evaluate({ context: { key: 'user-1', attributes: { country: 'NZ' } }, flags: ['eval.checkout', 'eval.colour', 'eval.missing'] });
    expect(res.statusCode).toBe(200);
    const { flags } = res.json();
    expect(flags).toHaveLength(3);
    expect(flags[0]).toEqual({ key: 'eval.checkout', value: true, variant: 'on', reason: 'TARGETING_MATCH', ruleIndex: 0 });
    expect(flags[1]).toMatchObject({ key: 'eval.colour', reason: 'SPLIT', variant: expect.stringMatching(/^(blue|red)$/) });
    expect(flags[2]).toEqual({ key: 'eval.missing', value: null, variant: null, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(res.json()).toEqual((await evaluate({ context: { key: 'user-1', attributes: { country: 'NZ' } }, flags: ['eval.checkout', 'eval.colour', 'eval.missing'] })).json());

    const all = (await evaluate({ context: { targetingKey: 'user-1', attributes: { groups: ['staff', 'beta'] } } })).json().flags;
    expect(all.map((f: { key: string }) => f.key)).toEqual(expect.arrayContaining(['eval.base', 'eval.checkout', 'eval.colour']));
    expect(all.find((f: { key: string }) => f.key === 'eval.checkout')).toMatchObject({ reason: 'TARGETING_MATCH', ruleIndex: 1 });

    const noKey = (await evaluate({ context: {}, flags: ['eval.colour'] })).json().flags[0];
    expect(noKey).toEqual({ key: 'eval.colour', value: '#000', variant: null, reason: 'ERROR', errorCode: 'TARGETING_KEY_MISSING' });
  });

  it('GET /system/flags/:key/evaluate reads the subject and attr.<name> from the query', async () => {
    const nz = await t.inject({ method: 'GET', url: `${PATH}/eval.checkout/evaluate?subject=user-1&attr.country=NZ` });
    expect(nz.statusCode).toBe(200);
    expect(nz.json()).toEqual({ key: 'eval.checkout', value: true, variant: 'on', reason: 'TARGETING_MATCH', ruleIndex: 0 });
    const beta = await t.inject({ method: 'GET', url: `${PATH}/eval.checkout/evaluate?subject=user-1&attr.groups=staff&attr.groups=beta` });
    expect(beta.json()).toMatchObject({ reason: 'TARGETING_MATCH', ruleIndex: 1 });
    const fr = await t.inject({ method: 'GET', url: `${PATH}/eval.checkout/evaluate?subject=user-1&attr.country=FR` });
    expect(fr.json()).toEqual({ key: 'eval.checkout', value: false, variant: 'off', reason: 'DEFAULT' });
    // The same answer as the bulk endpoint.
    const colour = (await t.inject({ method: 'GET', url: `${PATH}/eval.colour/evaluate?subject=user-9` })).json();
    expect(colour).toEqual((await evaluate({ context: { key: 'user-9' }, flags: ['eval.colour'] })).json().flags[0]);
  });

  // Issue 10, item 2: a rule on an inherited property name answered TARGETING_MATCH for a
  // context without that attribute (README: a missing attribute never matches).
  it('a rule on `constructor`, `toString`, `__proto__` or `hasOwnProperty` never matches a context without it', async () => {
    for (const attribute of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const key = `proto.${attribute.replace(/_/g, '')}`.toLowerCase();
      await created({ key, enabled: true, rolloutPercentage: 0, rules: [{ attribute, operator: 'not_in', values: ['enterprise'] }] });
      const bulk = (await evaluate({ context: { key: 'u1', attributes: { plan: 'free' } }, flags: [key] })).json().flags[0];
      expect(bulk, attribute).toMatchObject({ reason: 'DEFAULT', value: false });
      const single = (await t.inject({ method: 'GET', url: `${PATH}/${key}/evaluate?subject=u1&attr.plan=free` })).json();
      expect(single, attribute).toMatchObject({ reason: 'DEFAULT', value: false });
      // Carried by the context (query: any name; body: any name but __proto__, refused as poisoning), it is an ordinary attribute.
      const given = (await t.inject({ method: 'GET', url: `${PATH}/${key}/evaluate?subject=u1&attr.${attribute}=free` })).json();
      expect(given, attribute).toMatchObject({ reason: 'TARGETING_MATCH' });
      const listed = (await t.inject({ method: 'GET', url: `${PATH}/${key}/evaluate?subject=u1&attr.${attribute}=a&attr.${attribute}=enterprise` })).json();
      expect(listed, attribute).toMatchObject({ reason: 'DEFAULT' });
    }
    const body = (await evaluate({ context: { key: 'u1', attributes: { constructor: 'free' } }, flags: ['proto.constructor'] })).json().flags[0];
    expect(body).toMatchObject({ reason: 'TARGETING_MATCH' });
  });

  it('a rule serving a variant named like an Object.prototype member is refused (boolean flags have on/off only)', async () => {
    const res = await create({ key: 'proto.variant', rules: [{ attribute: 'plan', operator: 'in', values: ['x'], variant: 'constructor' }] });
    expect(res.statusCode, res.body).toBe(422);
  });

  it('an attribute version with a leading `v` or spaces is not a version: no semver rule matches it', async () => {
    await created({ key: 'semver.eq', enabled: true, rolloutPercentage: 0, rules: [{ attribute: 'appVersion', operator: 'semver_eq', values: ['2.0.0'] }] });
    const reason = async (appVersion: string) =>
      (await evaluate({ context: { key: 'u1', attributes: { appVersion } }, flags: ['semver.eq'] })).json().flags[0].reason;
    expect(await reason('2.0.0')).toBe('TARGETING_MATCH');
    for (const version of ['v2.0.0', '=2.0.0', ' 2.0.0', '2.0.0 ', '\t2.0.0\t']) expect(await reason(version), JSON.stringify(version)).toBe('DEFAULT');
    const viaQuery = await t.inject({ method: 'GET', url: `${PATH}/semver.eq/evaluate?subject=u1&attr.appVersion=v2.0.0` });
    expect(viaQuery.json().reason).toBe('DEFAULT');
  });

  it('the kill switch and prerequisites take effect on the next evaluation', async () => {
    const url = `${PATH}/eval.checkout/evaluate?subject=user-1&attr.country=NZ`;
    expect((await patch('eval.base', { enabled: false })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url })).json()).toEqual({ key: 'eval.checkout', value: false, variant: 'off', reason: 'PREREQUISITE_FAILED', prerequisite: 'eval.base' });
    await patch('eval.base', { enabled: true });
    await patch('eval.checkout', { enabled: false });
    expect((await t.inject({ method: 'GET', url })).json()).toEqual({ key: 'eval.checkout', value: false, variant: 'off', reason: 'DISABLED' });
    await patch('eval.checkout', { enabled: true });
    expect((await t.inject({ method: 'GET', url })).json().reason).toBe('TARGETING_MATCH');
  });

  it('rejects malformed evaluation requests with 400', async () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{}, '#/context'],
      [{ context: { key: 'u', colour: 'x' } }, '#/context/colour'],
      [{ context: { key: '' } }, '#/context/key'],
      [{ context: { key: 'k'.repeat(257) } }, '#/context/key'],
      [{ context: { key: 'u', attributes: { nested: { a: 1 } } } }, '#/context/attributes/nested'],
      [{ context: { key: 'u' }, flags: ['BAD KEY'] }, '#/flags/0'],
      [{ context: { key: 'u' }, flags: Array.from({ length: 501 }, (_, i) => `k${i}`) }, '#/flags'],
      [{ context: { key: 'u' }, flags: ['a', 'a'] }, '#/flags'],
      [{ context: { key: 'u' }, extra: true }, '#/extra'],
    ];
    for (const [body, pointer] of bad) {
      const res = await evaluate(body);
      expect(res.statusCode, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.json().errors, JSON.stringify(body).slice(0, 80)).toContainEqual(expect.objectContaining({ pointer: expect.stringContaining(pointer) }));
    }
    const fiveHundred = await evaluate({ context: { key: 'u' }, flags: Array.from({ length: 500 }, (_, i) => `k${i}`) });
    expect(fiveHundred.statusCode).toBe(200);
    expect(fiveHundred.json().flags).toHaveLength(500);

    for (const query of ['colour=red', 'attr.=x', 'attr.bad%20name=x', `subject=${'s'.repeat(257)}`, `attr.a=${'v'.repeat(1025)}`]) {
      const res = await t.inject({ method: 'GET', url: `${PATH}/eval.colour/evaluate?${query}` });
      expect(res.statusCode, query).toBe(400);
    }
    expect((await t.inject({ method: 'GET', url: `${PATH}/NOT_A_KEY/evaluate` })).statusCode).toBe(400);
  });

  it('counts evaluations by flag and reason, unknown keys under one label', async () => {
    await evaluate({ context: { key: 'm1' }, flags: ['eval.colour', 'made.up.1', 'made.up.2'] });
    const metrics = (await t.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/valhalla_flag_evaluations_total\{[^}]*flag="eval\.colour"[^}]*reason="SPLIT"[^}]*\} \d+/);
    expect(metrics).toMatch(/valhalla_flag_evaluations_total\{[^}]*flag="\(unknown\)"[^}]*reason="ERROR"[^}]*\} \d+/);
    expect(metrics).not.toMatch(/made\.up/);

    // A deleted flag's series go with it.
    await created({ key: 'metric.gone', enabled: true, rolloutPercentage: 100 });
    await evaluate({ context: { key: 'm1' }, flags: ['metric.gone'] });
    expect((await t.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/flag="metric\.gone"/);
    expect((await t.inject({ method: 'DELETE', url: `${PATH}/metric.gone` })).statusCode).toBe(204);
    expect((await t.inject({ method: 'GET', url: '/metrics' })).body).not.toMatch(/flag="metric\.gone"/);
  });

  it('evaluates from memory: no database query for 100 evaluation requests', async () => {
    // Let start-up and earlier writes settle (batched writers, reloads) before counting.
    await t.app.stateCache.reloadAll();
    const before = t.app.database.queryCount;
    for (let i = 0; i < 50; i++) {
      expect((await evaluate({ context: { key: `q${i}`, attributes: { country: 'NZ' } } })).statusCode).toBe(200);
      expect((await t.inject({ method: 'GET', url: `${PATH}/eval.checkout/evaluate?subject=q${i}&attr.country=NZ` })).statusCode).toBe(200);
    }
    for (let i = 0; i < 1000; i++) t.app.flags.evaluateAll({ key: `direct-${i}` });
    expect(t.app.database.queryCount - before).toBe(0);
    // The counter does see queries: a list read is one.
    await t.inject({ method: 'GET', url: PATH });
    expect(t.app.database.queryCount - before).toBeGreaterThan(0);
  });

  it('answers the same after a restart: a new instance on the same database buckets every subject alike', async () => {
    const restarted = await t.another();
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 60 }), fc.constantFrom('NZ', 'FR', undefined), (key, country) => {
        const context: EvaluationContext = { key, attributes: country ? { country } : {} };
        expect(restarted.flags.evaluateAll(context)).toEqual(t.app.flags.evaluateAll(context));
      }),
      { numRuns: 300 },
    );
  });

  it('shows the flag counts in the admin overview', async () => {
    const overview = await t.app.overview.read();
    expect(overview.flags).toMatchObject({ total: expect.any(Number), enabled: expect.any(Number) });
  });

  it('needs an API key (401) and the flags scopes (403)', async () => {
    const anonymous = await t.app.inject({ method: 'POST', url: `${PATH}/evaluate`, payload: { context: { key: 'u' } } });
    expect(anonymous.statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: PATH })).statusCode).toBe(401);

    const reader = authHeader((await t.keyWith(['flags:read'])).token);
    expect((await t.inject({ method: 'POST', url: `${PATH}/evaluate`, payload: { context: { key: 'u' } }, headers: reader })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: `${PATH}/eval.colour/evaluate?subject=u`, headers: reader })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: `${PATH}/eval.colour`, headers: reader })).statusCode).toBe(200);
    for (const [method, url, payload] of [
      ['POST', PATH, { key: 'reader.cannot' }],
      ['PATCH', `${PATH}/eval.colour`, { enabled: false }],
      ['DELETE', `${PATH}/eval.colour`],
    ] as const) {
      const res = await t.inject({ method, url, payload, headers: reader });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.json().type).toBe('/problems/forbidden');
    }

    const other = authHeader((await t.keyWith(['config:read'])).token);
    expect((await t.inject({ method: 'POST', url: `${PATH}/evaluate`, payload: { context: { key: 'u' } }, headers: other })).statusCode).toBe(403);

    const writer = authHeader((await t.keyWith(['flags:write'])).token);
    expect((await t.inject({ method: 'POST', url: PATH, payload: { key: 'writer.can' }, headers: writer })).statusCode).toBe(201);
    expect((await t.inject({ method: 'GET', url: `${PATH}/writer.can/evaluate`, headers: writer })).statusCode).toBe(200);
  });

  it('documents every route with a scope', async () => {
    const routes = t.app.routeCatalog.filter((r) => r.pack === 'feature-flags' && r.method !== 'HEAD');
    expect(routes.map((r) => `${r.method} ${r.url}`).sort()).toEqual(
      [
        `DELETE ${PATH}/:key`,
        `GET ${PATH}`,
        `GET ${PATH}/:key`,
        `GET ${PATH}/:key/evaluate`,
        `PATCH ${PATH}/:key`,
        `POST ${PATH}`,
        `POST ${PATH}/evaluate`,
      ].sort(),
    );
    for (const r of routes) expect(r.scope, r.url).toBe(r.method === 'GET' || r.url.endsWith('/evaluate') ? 'flags:read' : 'flags:write');
    const doc = (await t.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths[PATH])).toEqual(expect.arrayContaining(['get', 'post']));
    expect(doc.paths[`${PATH}/evaluate`].post.summary).toBeTruthy();
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL && !process.env.DATABASE_URL)('feature flags (UA): several instances', () => {
  it('a change made on one instance reaches the other within one second', async () => {
    const other = await t.another();
    const ctx = { key: 'cross-1', attributes: { plan: 'pro' } };
    expect(other.flags.evaluate('cross.flag', ctx).errorCode).toBe('FLAG_NOT_FOUND');

    await created({ key: 'cross.flag', enabled: true, rolloutPercentage: 0, rules: [{ attribute: 'plan', operator: 'equals', values: ['pro'] }] });
    expect(t.app.flags.evaluate('cross.flag', ctx).reason).toBe('TARGETING_MATCH');
    await vi.waitFor(() => expect(other.flags.evaluate('cross.flag', ctx).reason).toBe('TARGETING_MATCH'), { timeout: 1000, interval: 10 });

    // The kill switch, thrown on the other instance, reaches this one.
    expect((await patch('cross.flag', { enabled: false }, other)).statusCode).toBe(200);
    expect(other.flags.evaluate('cross.flag', ctx).reason).toBe('DISABLED');
    await vi.waitFor(() => expect(t.app.flags.evaluate('cross.flag', ctx).reason).toBe('DISABLED'), { timeout: 1000, interval: 10 });

    expect((await t.inject({ method: 'DELETE', url: `${PATH}/cross.flag` })).statusCode).toBe(204);
    await vi.waitFor(() => expect(other.flags.evaluate('cross.flag', ctx).errorCode).toBe('FLAG_NOT_FOUND'), { timeout: 1000, interval: 10 });
  });

  it('two instances evaluate random subjects identically', async () => {
    const other = await t.another();
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 60 }), (key) => {
        expect(other.flags.evaluateAll({ key })).toEqual(t.app.flags.evaluateAll({ key }));
      }),
      { numRuns: 300 },
    );
  });
});
