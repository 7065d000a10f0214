import { asc } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bulkInsert } from '../../db/bulk-insert.js';
import { systemLogs } from '../../plugins/system-log/table.js';
import { traceSpans } from '../../plugins/tracing/table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

describe('bulkInsert (one jsonb_to_recordset statement per batch)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t?.drop());

  it('round-trips timestamps, doubles, booleans, nulls, nested JSON and odd strings exactly', async () => {
    const startedAt = new Date('2026-11-26T10:11:12.345Z');
    const rows = [
      { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), parentSpanId: null, isRoot: true, name: 'GET /x', kind: 'server' as const, startedAt, durationMs: 0.125, status: 'unset' as const, statusCode: 200, attributes: { route: '/x', nested: { list: [1, 'two', null], quote: 'say "hi" \\ ok' } }, instanceId: 'i-1' },
      { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), parentSpanId: 'e'.repeat(16), isRoot: false, name: "it's ünïcødé 🚀\nline", kind: 'client' as const, startedAt, durationMs: 12345.5, status: 'error' as const, statusCode: null, attributes: null, instanceId: 'i-2' },
    ];
    await bulkInsert(t.database.db, traceSpans, rows);
    const back = await t.database.db.select().from(traceSpans).orderBy(asc(traceSpans.id));
    expect(back).toHaveLength(2);
    expect(back.map(({ id: _id, ...r }) => r)).toEqual(rows);
  });

  it('replaces U+0000, which PostgreSQL text and jsonb refuse, instead of failing the batch', async () => {
    await bulkInsert(t.database.db, systemLogs, [{ level: 'info', source: 'test', event: 'nul', message: 'a\u0000b', data: { k: 'c\u0000d' }, instanceId: 'i' }]);
    const [row] = await t.database.db.select().from(systemLogs);
    expect(row!.message).toBe('a\uFFFDb');
    expect(row!.data).toEqual({ k: 'c\uFFFDd' });
    // occurredAt was left out: the column default (now()) applied
    expect(Math.abs(row!.occurredAt.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it('keeps text that only looks like the escape (a backslash, then "u0000"), and replaces U+0000 after backslashes and in keys', async () => {
    const texts = ['\\u0000', 'x\\\\u0000', '\\\u0000', '\u0000\u0000'];
    await bulkInsert(t.database.db, systemLogs, texts.map((message, i) => ({ level: 'info', source: 'test', event: `escape-${i}`, message, data: { [`k\u0000${i}`]: message }, instanceId: 'i' })));
    const rows = (await t.database.db.select().from(systemLogs).orderBy(asc(systemLogs.id))).filter((r) => r.event.startsWith('escape-'));
    expect(rows.map((r) => r.message)).toEqual(['\\u0000', 'x\\\\u0000', '\\\uFFFD', '\uFFFD\uFFFD']);
    expect(rows.map((r) => Object.keys(r.data as object)[0])).toEqual(['k\uFFFD0', 'k\uFFFD1', 'k\uFFFD2', 'k\uFFFD3']);
  });

  it('falls back to a per-cell insert when rows define different columns, keeping each row right', async () => {
    const at = new Date('2020-01-01T00:00:00.000Z');
    await bulkInsert(t.database.db, systemLogs, [
      { level: 'warn', source: 'test', event: 'mixed-1', message: 'with time', occurredAt: at, instanceId: 'i' },
      { level: 'warn', source: 'test', event: 'mixed-2', message: 'without', instanceId: 'i' },
    ]);
    const rows = await t.database.db.select().from(systemLogs).orderBy(asc(systemLogs.id));
    const mixed = rows.filter((r) => r.event.startsWith('mixed'));
    expect(mixed.map((r) => r.event)).toEqual(['mixed-1', 'mixed-2']);
    expect(mixed[0]!.occurredAt.toISOString()).toBe(at.toISOString());
    expect(mixed[1]!.occurredAt.getTime()).toBeGreaterThan(at.getTime());
  });

  it('does nothing for no rows and writes a 500-row batch in one go', async () => {
    await bulkInsert(t.database.db, traceSpans, []);
    const before = t.database.queryCount;
    const many = Array.from({ length: 500 }, (_, i) => ({ traceId: i.toString(16).padStart(32, '0'), spanId: '1'.repeat(16), parentSpanId: null, isRoot: true, name: `n${i}`, kind: 'server' as const, startedAt: new Date(), durationMs: i, status: 'ok' as const, statusCode: 204, attributes: { i }, instanceId: 'bulk' }));
    await bulkInsert(t.database.db, traceSpans, many);
    expect(t.database.queryCount - before).toBe(1);
    const back = await t.database.db.select().from(traceSpans).orderBy(asc(traceSpans.id));
    expect(back.filter((r) => r.instanceId === 'bulk').map((r) => r.durationMs)).toEqual(many.map((r) => r.durationMs));
  });
});
