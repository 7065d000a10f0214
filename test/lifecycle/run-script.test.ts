import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from './server-process.js';

// scripts/run.mjs behind `npm start`, `npm run worker`, `db:migrate` and `key:new`: compiles
// only when dist/ is missing or older than the sources, else runs dist/ at once. Exercised on a
// one-file project laid out like this one, so the real dist/ is never touched.

const dir = mkdtempSync(path.join(tmpdir(), 'vk-run-script-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

mkdirSync(path.join(dir, 'scripts'));
mkdirSync(path.join(dir, 'src'));
cpSync(path.join(projectRoot, 'scripts/run.mjs'), path.join(dir, 'scripts/run.mjs'));
symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'));
writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
writeFileSync(
  path.join(dir, 'tsconfig.json'),
  JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'dist', rootDir: '.', types: [] } }),
);
writeFileSync(path.join(dir, 'tsconfig.build.json'), JSON.stringify({ extends: './tsconfig.json', compilerOptions: { incremental: true, tsBuildInfoFile: 'dist/.tsbuildinfo' }, include: ['src'] }));
const source = path.join(dir, 'src/hello.ts');
const write = (greeting: string) => writeFileSync(source, `const who: string = 'world';\nconsole.log(\`${greeting}, \${who}\`);\n`);

/** Makes the last build look older than the sources (file times have a coarse resolution on some file systems). */
const markBuiltEarlier = () => {
  const earlier = new Date(Date.now() - 60_000);
  utimesSync(path.join(dir, 'dist/.tsbuildinfo'), earlier, earlier);
};

const run = () => {
  const r = spawnSync(process.execPath, ['scripts/run.mjs', 'src/hello'], { cwd: dir, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
};

describe('scripts/run.mjs', () => {
  it('compiles on the first run, not on the next, and again after a source changes', { timeout: 60_000 }, () => {
    write('hello');
    const first = run();
    expect(first).toMatchObject({ status: 0, stdout: 'hello, world' });
    expect(first.stderr).toMatch(/no build yet: compiling/);

    const second = run();
    expect(second).toEqual({ status: 0, stdout: 'hello, world', stderr: '' });

    write('goodbye');
    markBuiltEarlier();
    const third = run();
    expect(third).toMatchObject({ status: 0, stdout: 'goodbye, world' });
    expect(third.stderr).toMatch(/sources changed since the last build/);
    expect(run()).toEqual({ status: 0, stdout: 'goodbye, world', stderr: '' });
  });

  it('runs dist/ as it is where TypeScript is not installed (the image), and says what is missing', { timeout: 60_000 }, () => {
    rmSync(path.join(dir, 'node_modules'));
    write('changed');
    markBuiltEarlier();
    expect(run()).toEqual({ status: 0, stdout: 'goodbye, world', stderr: '' });
    rmSync(path.join(dir, 'dist'), { recursive: true });
    const missing = run();
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/dist\/src\/hello\.js is missing and TypeScript is not installed/);
  });
});
