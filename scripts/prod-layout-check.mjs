#!/usr/bin/env node
// `npm run test:prod-layout` (run by .ci/run): builds dist/, lays the project out as the
// Dockerfile's runtime stage does (package files, dist/, drizzle/, scripts/run.mjs, production
// dependencies only from `npm ci --omit=dev`) in a temporary directory, and runs every runtime
// script there: db:migrate, key:new, start (and the image's CMD), worker. Each must work without
// TypeScript, tsx or any other dev dependency, and without compiling. Exits non-zero on the
// first failure; KEEP_PROD_LAYOUT=1 keeps the directory for a look.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const dir = mkdtempSync(path.join(tmpdir(), 'vk-prod-layout-'));
const started = Date.now();
const say = (line) => console.log(`prod-layout: ${line}`);

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** The environment of the image: no dev settings of the caller, PGlite in a data dir of its own. */
function env(extra) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(DATABASE_URL|TEST_DATABASE_URL|ADMIN_API_KEY|PORT|WORKER_PORT|DATA_DIR|PACKS_DISABLED|npm_.*)$/.test(k)));
  return { ...clean, NODE_ENV: 'production', HOST: '127.0.0.1', DATA_DIR: path.join(dir, 'data'), ...extra };
}

function run(cmd, args, extra = {}) {
  return execFileSync(cmd, args, { cwd: dir, env: env(extra), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Starts a long-running script, waits until `url` answers 200, checks `more`, stops it with SIGTERM. */
async function serve(label, cmd, args, extra, url, more = async () => {}) {
  const child = spawn(cmd, args, { cwd: dir, env: env(extra), stdio: ['ignore', 'pipe', 'pipe'] });
  const output = [];
  child.stdout.on('data', (c) => output.push(String(c)));
  child.stderr.on('data', (c) => output.push(String(c)));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let exit;
  void exited.then((e) => (exit = e));
  try {
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (exit) throw new Error(`${label} exited (${exit.code ?? exit.signal}) before answering ${url}`);
      if (Date.now() > deadline) throw new Error(`${label}: ${url} did not answer 200 within 90 s`);
      const status = await fetch(url).then((r) => r.status, () => 0);
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await more();
    child.kill('SIGTERM');
    const e = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), 15_000))]);
    if (!e) throw new Error(`${label} did not stop within 15 s of SIGTERM`);
    if (e.code !== 0) throw new Error(`${label} exited ${e.code ?? e.signal} after SIGTERM`);
    const text = output.join('');
    if (/compiling to dist/.test(text)) throw new Error(`${label} tried to compile`);
    return text;
  } catch (err) {
    child.kill('SIGKILL');
    err.message += `\n--- ${label} output ---\n${output.join('')}`;
    throw err;
  }
}

try {
  say('npm run build (development tree)');
  execFileSync(npm, ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });

  say(`laying out ${dir} as the image does`);
  for (const f of ['package.json', 'package-lock.json', '.npmrc']) if (existsSync(path.join(root, f))) cpSync(path.join(root, f), path.join(dir, f));
  for (const d of ['dist', 'drizzle', 'patches']) if (existsSync(path.join(root, d))) cpSync(path.join(root, d), path.join(dir, d), { recursive: true });
  cpSync(path.join(root, 'plugins/admin/console'), path.join(dir, 'dist/plugins/admin/console'), { recursive: true });
  mkdirSync(path.join(dir, 'scripts'));
  cpSync(path.join(root, 'scripts/run.mjs'), path.join(dir, 'scripts/run.mjs'));

  say('npm ci --omit=dev --engine-strict');
  run(npm, ['ci', '--omit=dev', '--engine-strict', '--no-audit', '--no-fund']);
  for (const dev of ['typescript', 'tsx', 'vitest']) {
    if (existsSync(path.join(dir, 'node_modules', dev))) throw new Error(`${dev} was installed with --omit=dev`);
  }

  say('npm run db:migrate');
  const migrated = run(npm, ['run', '-s', 'db:migrate']);
  if (!/migrations applied/.test(migrated)) throw new Error(`db:migrate said: ${migrated}`);

  say('npm run key:new');
  const key = run(npm, ['run', '-s', 'key:new']).trim();
  if (!/^vhk_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}$/.test(key)) throw new Error(`key:new printed ${JSON.stringify(key)}`);

  for (const [label, cmd, args] of [
    ['npm start', npm, ['start']],
    ["the image's CMD (node dist/src/server.js)", process.execPath, ['dist/src/server.js']],
  ]) {
    say(label);
    const port = await freePort();
    await serve(label, cmd, args, { PORT: String(port), ADMIN_API_KEY: key }, `http://127.0.0.1:${port}/ready`, async () => {
      const info = await fetch(`http://127.0.0.1:${port}/system/info`, { headers: { authorization: `Bearer ${key}` } });
      if (info.status !== 200) throw new Error(`GET /system/info answered ${info.status}`);
      // The console's libraries come from the production dependencies' node_modules.
      const script = await (await fetch(`http://127.0.0.1:${port}/console/app.js`)).text();
      const libraries = [...script.matchAll(/\/console\/vendor\/[^'"`\s]+/g)].map((m) => m[0]);
      if (libraries.length === 0) throw new Error('GET /console/app.js names no library file');
      for (const url of libraries) {
        const res = await fetch(`http://127.0.0.1:${port}${url}`);
        if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
      }
    });
  }

  say('npm run worker');
  const workerPort = await freePort();
  await serve('npm run worker', npm, ['run', 'worker'], { WORKER_PORT: String(workerPort), PORT: '0' }, `http://127.0.0.1:${workerPort}/live`);

  say(`ok in ${Math.round((Date.now() - started) / 1000)} s`);
} catch (err) {
  console.error(`prod-layout: FAILED: ${err.message}`);
  process.exitCode = 1;
} finally {
  if (process.env.KEEP_PROD_LAYOUT === '1') say(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
