import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePack } from '../../src/pack.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

// The access log (src/access-log.ts): one line per request, with the correlation id exactly once,
// where the request logger's binding puts it, on the access line and on every line a route or its
// child loggers write; never the query string or a key.

const loggingPack = definePack({
  name: 'access-log-test',
  code: 'ZL',
  description: 'test: routes that log nothing, log a line, and fail',
  routes: async (app) => {
    app.get('/quiet', { config: { public: true } }, async () => ({ ok: true }));
    app.get('/chatty', { config: { public: true } }, async (request) => {
      request.log.warn({ step: 'middle' }, 'a route line');
      return { ok: true };
    });
    app.get('/child', { config: { public: true } }, async (request) => {
      request.log.child({ part: 'inner' }).info('a grandchild line');
      return { ok: true };
    });
    app.get('/boom', { config: { public: true } }, async () => {
      throw new Error('failed on purpose');
    });
  },
});

const lines: string[] = [];
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ LOG_LEVEL: 'info' }, { extraPacks: [loggingPack], logger: { level: 'info', stream: { write: (line: string) => void lines.push(line) } } });
});
afterAll(async () => t?.close());

/** The lines of one request (by correlation id), parsed, with their raw text. */
function linesOf(id: string): Array<{ raw: string; entry: Record<string, unknown> }> {
  return lines.filter((l) => l.includes(`"${id}"`)).map((raw) => ({ raw, entry: JSON.parse(raw) as Record<string, unknown> }));
}
const occurrences = (text: string, part: string) => text.split(part).length - 1;

describe('access log', () => {
  it('writes one line for a request that logs nothing else, the correlation id right after the base bindings', async () => {
    const res = await t.inject({ method: 'GET', url: '/quiet?token=not-logged', headers: { 'x-request-id': 'quiet-1' } });
    expect(res.statusCode).toBe(200);
    const mine = linesOf('quiet-1');
    expect(mine).toHaveLength(1);
    const [{ raw, entry }] = mine as [{ raw: string; entry: Record<string, unknown> }];
    expect(entry).toMatchObject({ level: 30, msg: 'request', correlationId: 'quiet-1', method: 'GET', path: '/quiet', route: '/quiet', status: 200, ip: '127.0.0.1' });
    expect(Object.keys(entry).slice(0, 5)).toEqual(['level', 'time', 'pid', 'hostname', 'correlationId']);
    expect(occurrences(raw, '"correlationId"')).toBe(1);
    expect(raw).not.toContain('not-logged');
    expect(raw).not.toContain(t.adminKey);
  });

  it('binds the id on the lines a route writes and does not repeat it on the access line', async () => {
    await t.inject({ method: 'GET', url: '/chatty', headers: { 'x-request-id': 'chatty-1' } });
    const mine = linesOf('chatty-1');
    expect(mine.map((l) => l.entry.msg)).toEqual(['a route line', 'request']);
    expect(mine[0]!.entry).toMatchObject({ level: 40, step: 'middle', correlationId: 'chatty-1' });
    for (const { raw, entry } of mine) {
      expect(occurrences(raw, '"correlationId"')).toBe(1);
      expect(Object.keys(entry)[4]).toBe('correlationId');
    }
  });

  it('keeps the id on a child of the request logger', async () => {
    await t.inject({ method: 'GET', url: '/child', headers: { 'x-request-id': 'child-1' } });
    const mine = linesOf('child-1');
    expect(mine.map((l) => l.entry.msg)).toEqual(['a grandchild line', 'request']);
    expect(mine[0]!.entry).toMatchObject({ correlationId: 'child-1', part: 'inner' });
    for (const { raw } of mine) expect(occurrences(raw, '"correlationId"')).toBe(1);
  });

  it('logs a failed request: the error line and the access line, each with its id once', async () => {
    const res = await t.inject({ method: 'GET', url: '/boom', headers: { 'x-request-id': 'boom-9' } });
    expect(res.statusCode).toBe(500);
    const mine = linesOf('boom-9');
    expect(mine.map((l) => l.entry.msg)).toEqual(['request failed', 'request']);
    for (const { raw } of mine) expect(occurrences(raw, '"correlationId"')).toBe(1);
    expect(mine.at(-1)!.entry).toMatchObject({ status: 500, path: '/boom' });
  });

  it('follows the level: a request logger below the line level writes nothing for the route', async () => {
    const before = lines.length;
    t.app.log.level = 'error';
    try {
      await t.inject({ method: 'GET', url: '/chatty', headers: { 'x-request-id': 'chatty-quiet' } });
    } finally {
      t.app.log.level = 'info';
    }
    expect(lines.slice(before).filter((l) => l.includes('chatty-quiet'))).toEqual([]);
  });
});
