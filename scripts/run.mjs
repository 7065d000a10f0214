#!/usr/bin/env node
// Runs a compiled entry point from dist/, compiling first only when it is missing or a source
// file is newer than the last build. Plain JavaScript with Node's own modules only, so the same
// `npm start` / `npm run worker` / `npm run db:migrate` work in the development tree (TypeScript
// installed) and in the production layout (`npm ci --omit=dev` next to a built dist/, no tsc).
//
//   node scripts/run.mjs src/server       -> dist/src/server.js
//
// The build itself is incremental (tsconfig.build.json keeps a .tsbuildinfo in dist/), so even
// a rebuild after a one-file change is cheap.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const entry = process.argv[2];
if (!entry || !/^[\w./-]+$/.test(entry)) {
  console.error('usage: node scripts/run.mjs <entry without extension, e.g. src/server>');
  process.exit(2);
}
const compiled = path.join(root, 'dist', `${entry}.js`);
// Written by tsc at the end of every build (tsconfig.build.json `tsBuildInfoFile`).
const buildInfo = path.join(root, 'dist', '.tsbuildinfo');
const SOURCES = ['src', 'db', 'plugins', 'tsconfig.json', 'tsconfig.build.json'];

/** Newest modification time (ms) of the TypeScript sources and compiler settings. */
function newestSource() {
  let newest = 0;
  const visit = (p) => {
    let st;
    try {
      st = statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const name of readdirSync(p)) if (name !== 'node_modules') visit(path.join(p, name));
    } else if (p.endsWith('.ts') || p.endsWith('.json')) {
      newest = Math.max(newest, st.mtimeMs);
    }
  };
  for (const s of SOURCES) visit(path.join(root, s));
  return newest;
}

function typescriptCompiler() {
  try {
    return createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    return undefined;
  }
}

const tsc = typescriptCompiler();
const built = existsSync(compiled) && existsSync(buildInfo);
const stale = !built || (tsc !== undefined && existsSync(path.join(root, 'src')) && newestSource() > statSync(buildInfo).mtimeMs);

if (stale) {
  if (!tsc) {
    console.error(`${path.relative(root, compiled)} is missing and TypeScript is not installed: run \`npm run build\` in a tree with dev dependencies first`);
    process.exit(1);
  }
  console.error(built ? 'sources changed since the last build: compiling to dist/ (incremental)' : 'no build yet: compiling to dist/ (first time only)');
  // tsc --incremental trusts its build info even when outputs were deleted: start over then.
  if (!existsSync(compiled)) rmSync(buildInfo, { force: true });
  const started = Date.now();
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
  if (result.status !== 0) process.exit(result.status ?? 1);
  // tsc leaves its build info untouched when nothing changed: mark this check as done (no older
  // than the newest source, in case a file's time is ahead of the clock).
  const mark = new Date(Math.max(Date.now(), newestSource()));
  utimesSync(buildInfo, mark, mark);
  console.error(`compiled in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

await import(pathToFileURL(compiled).href);
