import { eq } from 'drizzle-orm';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePack } from '../../src/pack.js';
import { encodeCursor } from '../../src/pagination.js';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';
import { buildSpanTree, type TraceSpanRow } from './service.js';
import { traceSpans } from './table.js';
import { createSampler, newTraceId, parseTraceparent, type TraceContext } from './trace-context.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[0-3])$/;

/** Routes that expose what the tracing pack did, as a pack using it would. */
const probe = definePack({
  name: 'trace-probe',
  code: 'ZZ',
  description: 'test pack',
  dependencies: ['tracing'],
  routes: async (app) => {
    app.get('/test/context', { config: { public: true } }, async (request) => ({
      context: request.traceContext,
      outgoing: app.tracing.outgoingHeaders(request),
    }));
    app.get('/test/items/:id', { config: { public: true } }, async () => ({ ok: true }));
    app.get('/test/boom', { config: { public: true } }, async () => {
      throw new Error('kaboom');
    });
    app.get('/test/nested', { config: { public: true } }, async (request) => {
      const call = app.tracing.startSpan('POST https://hooks.example/x', { parent: request, kind: 'client', attributes: { url: 'https://hooks.example/x' } });
      const inner = app.tracing.startSpan('sign payload', { parent: call.context });
      inner.end();
      const headers = call.headers();
      call.end({ statusCode: 502, status: 'error' });
      return { headers };
    });
  },
});

let t: TestApp;
let unsampled: FastifyInstance;
beforeAll(async () => {
  t = await createTestApp({ TRACE_SAMPLE_RATE: 1 }, { extraPacks: [probe] });
  unsampled = await t.another({ TRACE_SAMPLE_RATE: 0 });
});
afterAll(async () => t?.close());

const get = (app: FastifyInstance, url: string, headers: Record<string, string> = {}) => t.inject({ method: 'GET', url, headers }, app);

async function contextFor(headers: Record<string, string>, app: FastifyInstance = t.app) {
  const res = await get(app, '/test/context', headers);
  expect(res.statusCode).toBe(200);
  const body = res.json() as { context: TraceContext; outgoing: { traceparent: string; tracestate?: string } };
  const response = TRACEPARENT.exec(String(res.headers.traceparent));
  expect(response, String(res.headers.traceparent)).not.toBeNull();
  return { ...body, response: { traceId: response![1], spanId: response![2], flags: response![3] } };
}

async function spansOfTrace(traceId: string): Promise<TraceSpanRow[]> {
  await t.app.batchWriters.flushAll();
  await unsampled.batchWriters.flushAll();
  return t.app.db.select().from(traceSpans).where(eq(traceSpans.traceId, traceId));
}

describe('tracing (TW): inbound traceparent', () => {
  it('continues a valid trace: same trace id, parent = the caller span, new span id', async () => {
    const { context, response, outgoing } = await contextFor({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'congo=t61rcWkgMzE' });
    expect(context).toMatchObject({ traceId: TRACE_ID, parentSpanId: PARENT_ID, sampled: true, traceState: 'congo=t61rcWkgMzE' });
    expect(context.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(context.spanId).not.toBe(PARENT_ID);
    expect(response).toEqual({ traceId: TRACE_ID, spanId: context.spanId, flags: '01' });
    // an outgoing call is a child of the server span, in the same trace, with the vendor state
    const out = TRACEPARENT.exec(outgoing.traceparent)!;
    expect(out[1]).toBe(TRACE_ID);
    expect(out[2]).not.toBe(context.spanId);
    expect(outgoing.tracestate).toBe('congo=t61rcWkgMzE');
  });

  it('accepts a future version with extra fields', async () => {
    const { context } = await contextFor({ traceparent: `cc-${TRACE_ID}-${PARENT_ID}-01-what-the-future-holds` });
    expect(context).toMatchObject({ traceId: TRACE_ID, parentSpanId: PARENT_ID });
  });

  const invalid: Record<string, string> = {
    'short trace id': `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`,
    'long parent id': `00-${TRACE_ID}-${PARENT_ID}0-01`,
    'all-zero trace id': `00-${'0'.repeat(32)}-${PARENT_ID}-01`,
    'all-zero parent id': `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
    uppercase: `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`,
    'version ff': `ff-${TRACE_ID}-${PARENT_ID}-01`,
    'version 00 with extra fields': `00-${TRACE_ID}-${PARENT_ID}-01-extra`,
    'future version without a dash after the flags': `cc-${TRACE_ID}-${PARENT_ID}-01x`,
    'non-hex': `00-${TRACE_ID.slice(0, 31)}g-${PARENT_ID}-01`,
    'wrong separators': `00_${TRACE_ID}_${PARENT_ID}_01`,
    'two headers joined': `00-${TRACE_ID}-${PARENT_ID}-01, 00-${TRACE_ID}-${PARENT_ID}-01`,
    empty: '',
  };
  for (const [name, traceparent] of Object.entries(invalid)) {
    it(`starts a new trace for an invalid traceparent (${name}) and drops its tracestate`, async () => {
      const { context, response } = await contextFor({ traceparent, tracestate: 'congo=t61rcWkgMzE' });
      expect(context.traceId).not.toBe(TRACE_ID);
      expect(context.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(context).toMatchObject({ parentSpanId: null, traceState: null });
      expect(response.traceId).toBe(context.traceId);
    });
  }

  // Issue 10, item 5 (the W3C test suite's cases; the grammar itself is pinned in trace-context.test.ts).
  it('keeps a valid tracestate with spaces and tabs around its members, without them', async () => {
    const { context, outgoing } = await contextFor({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'foo=1 \t , \t bar=2, \t baz=3' });
    expect(context.traceState).toBe('foo=1,bar=2,baz=3');
    expect(outgoing.tracestate).toBe('foo=1,bar=2,baz=3');
  });

  it('combines several tracestate fields in order, and skips empty ones', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/test/context',
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00`, tracestate: ['foo=1,bar=2', '', 'rojo=1,congo=2', 'baz=3'] },
    });
    expect(res.json().context.traceState).toBe('foo=1,bar=2,rojo=1,congo=2,baz=3');
  });

  it.each([
    ['a key with a space', 'foo =1'],
    ['an uppercase key', 'FOO=1'],
    ['a dot in the key', 'foo.bar=1'],
    ['a value with =', 'foo=bar=baz'],
    ['an empty value', 'foo=,bar=3'],
    ['a duplicate key', 'foo=1,foo=2'],
    ['33 members', Array.from({ length: 33 }, (_, i) => `bar${i}=${i}`).join(',')],
    ['a value over 256 characters', `a=${'x'.repeat(257)}`],
    ['a control character', 'foo=1\u0001'],
  ])('discards the whole tracestate for %s', async (_label, tracestate) => {
    const { context, outgoing } = await contextFor({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate });
    expect(context.traceState).toBeNull();
    expect(outgoing.tracestate).toBeUndefined();
    // The traceparent is not affected by a tracestate that fails to parse.
    expect(context).toMatchObject({ traceId: TRACE_ID, parentSpanId: PARENT_ID });
  });

  it('keeps the random-trace-id flag (0x02) of the caller, and sets it on the traces it starts', async () => {
    for (const [inbound, expected] of [['03', '03'], ['02', '02'], ['01', '01'], ['00', '00'], ['07', '03'], ['fe', '02']] as const) {
      const { context, response, outgoing } = await contextFor({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-${inbound}` });
      expect(response.flags, inbound).toBe(expected);
      expect(outgoing.traceparent.slice(-2), inbound).toBe(expected);
      expect(context.randomTraceId, inbound).toBe(expected === '02' || expected === '03');
    }
    const fresh = await contextFor({});
    expect(fresh.response.flags).toBe('03'); // TRACE_SAMPLE_RATE=1: sampled, and our ids are random
    expect((await contextFor({}, unsampled)).response.flags).toBe('02');
  });

  it('gives every request its own span id', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) ids.add((await contextFor({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` })).context.spanId);
    expect(ids.size).toBe(20);
  });
});

describe('tracing (TW): sampling', () => {
  it('honours an inbound unsampled flag even at TRACE_SAMPLE_RATE=1', async () => {
    const traceId = newTraceId();
    const { context, response } = await contextFor({ traceparent: `00-${traceId}-${PARENT_ID}-00` });
    expect(context.sampled).toBe(false);
    expect(response.flags).toBe('00');
    expect(await spansOfTrace(traceId)).toEqual([]);
  });

  it('honours an inbound sampled flag even at TRACE_SAMPLE_RATE=0', async () => {
    const traceId = newTraceId();
    const { context } = await contextFor({ traceparent: `00-${traceId}-${PARENT_ID}-01` }, unsampled);
    expect(context.sampled).toBe(true);
    const spans = await spansOfTrace(traceId);
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({ parentSpanId: PARENT_ID, instanceId: unsampled.lifecycle.instanceId });
  });

  it('never records probe routes as spans, even when the caller asks for sampling', async () => {
    const traceId = 'a1'.repeat(16);
    const res = await get(t.app, '/live', { traceparent: `00-${traceId}-${'b2'.repeat(8)}-01` });
    expect(res.statusCode).toBe(200);
    expect(res.headers.traceparent).toContain(traceId);
    await t.app.batchWriters.flushAll();
    expect((await get(t.app, `/system/traces/${traceId}`)).statusCode).toBe(404);
  });

  it('writes no spans at TRACE_SAMPLE_RATE=0 without an inbound flag', async () => {
    for (let i = 0; i < 10; i++) {
      const res = await get(unsampled, `/test/items/${i}`);
      expect(res.headers.traceparent).toMatch(/-02$/); // not sampled; random trace id
    }
    await unsampled.batchWriters.flushAll();
    const rows = await t.app.db.select().from(traceSpans).where(eq(traceSpans.name, 'GET /test/items/:id'));
    expect(rows.filter((r) => r.instanceId === unsampled.lifecycle.instanceId)).toEqual([]);
  });

  it('decides from the trace id alone: the same on every instance, monotonic in the rate, close to the rate', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-f]{32}$/), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (id, a, b) => {
        const [low, high] = a < b ? [a, b] : [b, a];
        expect(createSampler(low)(id)).toBe(createSampler(low)(id));
        if (createSampler(low)(id)) expect(createSampler(high)(id)).toBe(true);
      }),
    );
    const sample = createSampler(0.25);
    let kept = 0;
    for (let i = 0; i < 20_000; i++) if (sample(newTraceId())) kept++;
    expect(kept / 20_000).toBeGreaterThan(0.22);
    expect(kept / 20_000).toBeLessThan(0.28);
  });

  it('parses exactly the traceparents the W3C grammar allows (version 00)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-f]{32}$/), fc.stringMatching(/^[0-9a-f]{16}$/), fc.stringMatching(/^[0-9a-f]{2}$/), (traceId, parentId, flags) => {
        const parsed = parseTraceparent(`00-${traceId}-${parentId}-${flags}`);
        if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) expect(parsed).toBeNull();
        else expect(parsed).toEqual({ traceId, parentId, sampled: (parseInt(flags, 16) & 1) === 1, randomTraceId: (parseInt(flags, 16) & 2) === 2 });
      }),
    );
  });
});

describe('tracing (TW): spans', () => {
  it('records a server span named by method and route template, with attributes', async () => {
    const traceId = newTraceId();
    const res = await get(t.app, '/test/items/42?token=secret', { traceparent: `00-${traceId}-${PARENT_ID}-01`, 'x-request-id': 'corr-span-1' });
    expect(res.statusCode).toBe(200);
    const [span] = await spansOfTrace(traceId);
    expect(span).toMatchObject({
      name: 'GET /test/items/:id',
      kind: 'server',
      isRoot: true,
      parentSpanId: PARENT_ID,
      status: 'unset',
      statusCode: 200,
      attributes: { method: 'GET', route: '/test/items/:id', path: '/test/items/42', correlationId: 'corr-span-1' },
    });
    expect(span!.durationMs).toBeGreaterThanOrEqual(0);
    expect(span!.spanId).toBe(TRACEPARENT.exec(String(res.headers.traceparent))![2]);
  });

  it('marks the span of a 5xx as an error, and the problem response still carries traceparent', async () => {
    const traceId = newTraceId();
    const res = await get(t.app, '/test/boom', { traceparent: `00-${traceId}-${PARENT_ID}-01` });
    expect(res.statusCode).toBe(500);
    expect(String(res.headers.traceparent)).toContain(traceId);
    const [span] = await spansOfTrace(traceId);
    expect(span).toMatchObject({ name: 'GET /test/boom', status: 'error', statusCode: 500 });
  });

  it('names the span of an unmatched route by its method only', async () => {
    const traceId = newTraceId();
    expect((await get(t.app, '/test/nowhere', { traceparent: `00-${traceId}-${PARENT_ID}-01` })).statusCode).toBe(404);
    const [span] = await spansOfTrace(traceId);
    expect(span).toMatchObject({ name: 'GET', statusCode: 404, status: 'unset', attributes: { route: null, path: '/test/nowhere' } });
  });
});

describe('tracing (TW): GET /system/traces/:traceId', () => {
  it('returns the spans of one trace as a tree', async () => {
    const traceId = newTraceId();
    const res = await get(t.app, '/test/nested', { traceparent: `00-${traceId}-${PARENT_ID}-01` });
    const { headers } = res.json() as { headers: { traceparent: string } };
    await t.app.batchWriters.flushAll();

    const tree = await get(t.app, `/system/traces/${traceId}`);
    expect(tree.statusCode, tree.body).toBe(200);
    const body = tree.json();
    expect(body).toMatchObject({ traceId, spanCount: 3, truncated: false });
    expect(body.roots).toHaveLength(1);
    const [server] = body.roots;
    expect(server).toMatchObject({ name: 'GET /test/nested', kind: 'server', parentSpanId: PARENT_ID });
    expect(server.children).toHaveLength(1);
    const [client] = server.children;
    expect(client).toMatchObject({ name: 'POST https://hooks.example/x', kind: 'client', parentSpanId: server.spanId, status: 'error', statusCode: 502, attributes: { url: 'https://hooks.example/x' } });
    // the outgoing call carried the client span as its parent
    expect(headers.traceparent).toBe(`00-${traceId}-${client.spanId}-01`);
    expect(client.children).toEqual([expect.objectContaining({ name: 'sign payload', kind: 'internal', parentSpanId: client.spanId, children: [] })]);
  });

  it('answers 400 to a malformed trace id', async () => {
    for (const id of ['abc', TRACE_ID.toUpperCase(), `${TRACE_ID}0`, `${TRACE_ID.slice(1)}g`]) {
      const res = await get(t.app, `/system/traces/${id}`);
      expect(res.statusCode, id).toBe(400);
      expect(res.json().type).toBe('/problems/validation-failed');
    }
  });

  it('answers 404 to an unknown trace', async () => {
    const res = await get(t.app, `/system/traces/${newTraceId()}`);
    expect(res.statusCode).toBe(404);
    expect(res.json().type).toBe('/problems/resource-not-found');
  });
});

describe('tracing (TW): GET /system/traces', () => {
  const slowTraceIds: string[] = [];
  beforeAll(async () => {
    // Root spans slower than any real request here, so the filter isolates them.
    for (let i = 0; i < 7; i++) {
      const context: TraceContext = { traceId: newTraceId(), spanId: '1'.repeat(15) + String(i), parentSpanId: null, sampled: true, randomTraceId: true, traceState: null };
      t.app.tracing.recordSpan({
        context,
        name: `job ${i}`,
        kind: 'internal',
        startedAt: new Date(Date.UTC(2031, 0, 1, 0, i)),
        durationMs: 60_000 + i,
        status: i % 2 ? 'error' : 'ok',
      });
      t.app.tracing.recordSpan({ context: { ...context, spanId: '2'.repeat(15) + String(i), parentSpanId: context.spanId }, name: 'child', kind: 'internal', startedAt: new Date(), durationMs: 1 });
      slowTraceIds.push(context.traceId);
    }
    await t.app.batchWriters.flushAll();
  });

  const list = async (query: string) => {
    const res = await get(t.app, `/system/traces?${query}`);
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { items: Array<{ traceId: string; name: string; spanCount: number; status: string; startedAt: string }>; nextCursor: string | null };
  };

  it('lists root spans newest first with their span counts, page by page', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await list(`minDurationMs=60000&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.items.map((i) => i.traceId));
      for (const item of page.items) expect(item.spanCount).toBe(2);
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([...slowTraceIds].reverse());
  });

  it('filters by status, since and until', async () => {
    expect((await list('minDurationMs=60000&status=error')).items.map((i) => i.name)).toEqual(['job 5', 'job 3', 'job 1']);
    expect((await list('since=2031-01-01T00:02:00Z&until=2031-01-01T00:04:00Z')).items.map((i) => i.name)).toEqual(['job 4', 'job 3', 'job 2']);
  });

  it('lists request traces too', async () => {
    const traceId = newTraceId();
    await get(t.app, '/test/items/7', { traceparent: `00-${traceId}-${PARENT_ID}-01` });
    await t.app.batchWriters.flushAll();
    expect((await list('limit=500')).items.map((i) => i.traceId)).toContain(traceId);
  });

  it('rejects bad filters', async () => {
    for (const query of ['status=failed', 'minDurationMs=-1', 'minDurationMs=abc', 'since=yesterday', 'limit=0', 'limit=501', 'bogus=1', `cursor=${encodeCursor(['x'])}`, 'cursor=abc']) {
      const res = await get(t.app, `/system/traces?${query}`);
      expect(res.statusCode, query).toBe(400);
    }
  });
});

describe('tracing (TW): tree building', () => {
  const span = (spanId: string, parentSpanId: string | null): TraceSpanRow => ({
    id: 0,
    traceId: TRACE_ID,
    spanId,
    parentSpanId,
    isRoot: parentSpanId === null,
    name: spanId,
    kind: 'internal',
    startedAt: new Date(0),
    durationMs: 1,
    status: 'unset',
    statusCode: null,
    attributes: null,
    instanceId: 'i',
  });

  it('keeps every span exactly once, even with a parent cycle', () => {
    const roots = buildSpanTree([span('a', null), span('b', 'a'), span('c', 'd'), span('d', 'c'), span('e', 'e')]);
    const names: string[] = [];
    const stack = [...roots];
    while (stack.length) {
      const n = stack.pop()!;
      names.push(n.spanId);
      stack.push(...n.children);
    }
    expect(names.sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(roots.find((r) => r.spanId === 'a')!.children.map((c) => c.spanId)).toEqual(['b']);
  });
});
