import { describe, expect, it } from 'vitest';
import { EnvError, loadEnv } from '../../src/env.js';
import { decodeCursor, encodeCursor, toPage } from '../../src/pagination.js';
import { definePack, resolvePacks } from '../../src/pack.js';

describe('environment', () => {
  it('applies defaults and converts types', () => {
    const env = loadEnv({ PORT: '8080', RUN_JOBS: 'false', TRACE_SAMPLE_RATE: '0.25' });
    expect(env).toMatchObject({ PORT: 8080, RUN_JOBS: false, TRACE_SAMPLE_RATE: 0.25, HOST: '0.0.0.0' });
  });

  it('names the variable and what it expected in one line', () => {
    expect(() => loadEnv({ PORT: 'abc' })).toThrow(EnvError);
    expect(() => loadEnv({ PORT: 'abc' })).toThrow(/^invalid environment variable PORT="abc": .+$/);
    expect(() => loadEnv({ TRACE_SAMPLE_RATE: '2' })).toThrow(/TRACE_SAMPLE_RATE/);
    expect(() => loadEnv({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
  });

  it('never echoes a database URL or token', () => {
    expect(() => loadEnv({ DATABASE_URL: 'mysql://user:hunter2@db' })).toThrow(/DATABASE_URL=<redacted>/);
    expect(() => loadEnv({ DATABASE_URL: 'mysql://user:hunter2@db' })).not.toThrow(/hunter2/);
  });
});

describe('pack list', () => {
  const a = definePack({ name: 'a', code: 'AA', description: 'a' });
  const b = definePack({ name: 'b', code: 'BB', description: 'b', dependencies: ['a'] });

  it('keeps list order and drops disabled packs', () => {
    expect(resolvePacks([a, b], '').map((p) => p.meta.name)).toEqual(['a', 'b']);
    expect(resolvePacks([a, b], 'b').map((p) => p.meta.name)).toEqual(['a']);
  });

  it('fails fast naming the dependant and the missing pack', () => {
    expect(() => resolvePacks([a, b], 'a')).toThrow("pack 'b' needs pack 'a', which PACKS_DISABLED turns off");
    expect(() => resolvePacks([b], '')).toThrow("pack 'b' needs pack 'a', which is not in the pack list");
    expect(() => resolvePacks([b, a], '')).toThrow("listed after it");
    expect(() => resolvePacks([a], 'nope')).toThrow("unknown pack 'nope'");
  });

  it('refuses a pack name that is not kebab-case', () => {
    expect(() => definePack({ name: 'Bad_Name', code: 'XX', description: '' })).toThrow(/kebab-case/);
  });
});

describe('cursor', () => {
  it('round-trips and rejects anything else', () => {
    expect(decodeCursor(encodeCursor([5]), 1)).toEqual([5]);
    expect(decodeCursor(undefined, 1)).toBeUndefined();
    expect(() => decodeCursor('e30', 1)).toThrow(/cursor/);
    expect(() => decodeCursor(encodeCursor(['2026-01-01', 1]), 1)).toThrow(/cursor/);
  });

  it('gives a next cursor only when a further row exists', () => {
    const rows = [{ id: 3 }, { id: 2 }, { id: 1 }];
    expect(toPage(rows, 2, (r) => [r.id], (r) => r.id)).toEqual({ items: [3, 2], nextCursor: encodeCursor([2]) });
    expect(toPage(rows, 3, (r) => [r.id], (r) => r.id)).toEqual({ items: [3, 2, 1], nextCursor: null });
  });
});
