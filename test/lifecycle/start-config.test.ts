import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EnvError, loadEnv } from '../../src/env.js';
import { definePack, PackConfigError, resolvePacks } from '../../src/pack.js';
import { runServer } from './server-process.js';

// A bad setting stops the process at start with one line naming what is wrong, before any
// database is opened: the real entry point is run with each bad value.

const dataDir = mkdtempSync(path.join(tmpdir(), 'vk-start-config-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function startWith(settings: Record<string, string>) {
  const { child, output, exited } = runServer({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', DATA_DIR: dataDir, ...settings });
  // A server that starts despite the bad value is killed, and fails the test below.
  const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const exit = await exited;
  clearTimeout(kill);
  return { exit, lines: output.filter((l) => l.trim() !== '') };
}

describe('start-up configuration errors', () => {
  it('PORT=abc exits non-zero with one line naming PORT', { timeout: 60_000 }, async () => {
    const { exit, lines } = await startWith({ PORT: 'abc' });
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\bPORT\b/);
    expect(lines[0]).toContain('abc');
  });

  it('PACKS_DISABLED naming an unknown pack exits non-zero naming the pack', { timeout: 60_000 }, async () => {
    const { exit, lines } = await startWith({ PACKS_DISABLED: 'problem-details-nonexistent' });
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("'problem-details-nonexistent'");
  });

  it('names the variable for out-of-range and malformed values', () => {
    expect(() => loadEnv({ PORT: '70000' })).toThrow(EnvError);
    expect(() => loadEnv({ PORT: '70000' })).toThrow(/PORT/);
    expect(() => loadEnv({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
    expect(() => loadEnv({ DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL=<redacted>/);
    expect(loadEnv({ PORT: '8080' }).PORT).toBe(8080);
  });
});

describe('pack dependencies (resolvePacks)', () => {
  const base = definePack({ name: 'base', code: 'T1', description: 'test' });
  const needsBase = definePack({ name: 'needs-base', code: 'T2', description: 'test', dependencies: ['base'] });
  const needsGhost = definePack({ name: 'needs-ghost', code: 'T3', description: 'test', dependencies: ['ghost'] });

  it('loads packs in list order when every dependency comes first', () => {
    expect(resolvePacks([base, needsBase], '').map((p) => p.meta.name)).toEqual(['base', 'needs-base']);
    expect(resolvePacks([base, needsBase], 'needs-base').map((p) => p.meta.name)).toEqual(['base']);
  });

  it('refuses to disable a pack another enabled pack needs, naming both', () => {
    expect(() => resolvePacks([base, needsBase], 'base')).toThrow(PackConfigError);
    expect(() => resolvePacks([base, needsBase], 'base')).toThrow(/'needs-base' needs pack 'base'.*PACKS_DISABLED/);
  });

  it('names a dependency missing from the pack list', () => {
    expect(() => resolvePacks([base, needsGhost], '')).toThrow(/'needs-ghost' needs pack 'ghost', which is not in the pack list/);
  });

  it('names a dependency listed after its dependant', () => {
    expect(() => resolvePacks([needsBase, base], '')).toThrow(/'needs-base' needs pack 'base', listed after it/);
  });

  it('names an unknown pack in PACKS_DISABLED', () => {
    expect(() => resolvePacks([base], ' base , nope ')).toThrow(/unknown pack 'nope'/);
  });
});
