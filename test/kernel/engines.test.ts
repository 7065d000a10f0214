import { readFileSync } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../lifecycle/server-process.js';

// `engines` is a promise to whoever installs: every Node version it admits must satisfy every
// locked package's own `engines.node` (else npm warns EBADENGINE and `--engine-strict` fails),
// dev dependencies included (the suite runs on the same versions).
// Node 20 is the development and CI runtime, Node 24 the production image's.

interface Lock {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
}
const read = <T>(file: string): T => JSON.parse(readFileSync(path.join(projectRoot, file), 'utf8')) as T;
const pkg = read<{ engines: { node: string } }>('package.json');
const lock = read<Lock>('package-lock.json');

describe('engines', () => {
  it('admits Node 20 and Node 24', () => {
    expect(semver.satisfies('20.19.0', pkg.engines.node)).toBe(true);
    expect(semver.satisfies('24.0.0', pkg.engines.node)).toBe(true);
  });

  it('admits no Node version that an installed package refuses', () => {
    const refusing = Object.entries(lock.packages)
      .filter(([where]) => where !== '')
      .flatMap(([where, p]) => {
        const node = Array.isArray(p.engines) ? undefined : p.engines?.node;
        return node && !semver.subset(pkg.engines.node, node) ? [`${where}@${p.version} wants node ${node}`] : [];
      });
    expect(refusing).toEqual([]);
  });
});
