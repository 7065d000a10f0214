import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { projectRoot } from './lifecycle/server-process.js';

// The README's curl examples, run as a reader would: every ```sh block that calls curl, top to
// bottom in one bash session, against a fresh kernel listening on loopback, started as "The
// first key" says (ADMIN_API_KEY set; in this process, on this file's own database). Every call must answer 2xx, or the status its line documents with a
// trailing `# → 404`-style comment. Paths come from the README itself, so renaming a route
// means fixing its examples.

const hasTools = ['bash', 'curl', 'jq'].every((tool) => spawnSync(tool, ['--version']).status === 0);

interface Call {
  status: number;
  expected: string;
  method: string;
  url: string;
}

/** The README's ```sh blocks that call curl, with `# → NNN` turned into an expectation. */
export function readmeScript(readme: string, origin: string): { script: string; curlCount: number } {
  const blocks = [...readme.matchAll(/^ *```sh\n([\s\S]*?)^ *```/gm)].map((m) => m[1]!).filter((b) => /(^|[\s(])curl\s/m.test(b));
  let curlCount = 0;
  const out: string[] = [];
  blocks.forEach((block, i) => {
    out.push(`echo "::vk-block ${i + 1}" >&2`);
    const lines = block.split('\n');
    let command: string[] = [];
    for (const line of lines) {
      command.push(line);
      if (line.endsWith('\\')) continue;
      const text = command.join('\n');
      const code = text.replace(/(^|\s)#.*$/gm, '');
      curlCount += (code.match(/(^|[\s($])curl\s/g) ?? []).length;
      const expected = /#.*→ (\d{3})\b/.exec(command[command.length - 1]!)?.[1];
      if (expected) out.push(`export VK_EXPECT=${expected}`);
      out.push(text.replaceAll('localhost:3000', origin.replace(/^http:\/\//, '')));
      if (expected) out.push('unset VK_EXPECT');
      command = [];
    }
  });
  return { script: out.join('\n'), curlCount };
}

// Every curl reports its status, the expectation and what it called on stderr, body untouched.
const PRELUDE = [
  'set -e -o pipefail',
  'curl() {',
  '  command curl -sS -w "%{stderr}::vk-status %{http_code} ${VK_EXPECT:-2xx} %{method} %{url_effective}\\n" "$@"',
  '}',
  '',
].join('\n');

let t: TestApp | undefined;
let origin = '';

beforeAll(async () => {
  if (!hasTools) return;
  // The README exports its channel secrets "in the server's environment, before it starts": the
  // server here is this process (an unset secret is a 422 when a channel names it).
  const readme = readFileSync(path.join(projectRoot, 'README.md'), 'utf8');
  for (const line of readme.split('\n').filter((l) => /^export .*NOTIFY_SECRET_/.test(l))) {
    for (const [, name] of line.matchAll(/(NOTIFY_SECRET_[A-Z0-9_]+)=/g)) process.env[name!] ??= `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
  }
  t = await createTestApp();
  origin = await t.app.listen({ host: '127.0.0.1', port: 0 });
}, 120_000);
afterAll(async () => t?.close());

/** bash without blocking this process's event loop, which serves the requests. */
function bash(script: string, env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 170_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

describe('README examples', () => {
  it('finds the examples and reads each expectation', () => {
    const { script, curlCount } = readmeScript(
      '```sh\nA=$(curl -s localhost:3000/x | jq .id)\ncurl -X POST localhost:3000/y \\\n  -d "{}"   # → 404\n# curl in a comment\n```\n```sh\nnpm start\n```\n',
      'http://127.0.0.1:9',
    );
    expect(curlCount).toBe(2);
    expect(script).toContain('A=$(curl -s 127.0.0.1:9/x | jq .id)');
    expect(script).toMatch(/export VK_EXPECT=404\ncurl -X POST 127\.0\.0\.1:9\/y \\\n {2}-d "\{\}" {3}# → 404\nunset VK_EXPECT/);
    expect(script).not.toContain('npm start');
  });

  it.skipIf(!hasTools)('runs every curl example top to bottom with the documented status', { timeout: 180_000 }, async () => {
    const { script, curlCount } = readmeScript(readFileSync(path.join(projectRoot, 'README.md'), 'utf8'), origin);
    const run = await bash(PRELUDE + script, { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ADMIN_API_KEY: t!.adminKey });
    const calls: Call[] = [];
    for (const line of run.stderr.split('\n')) {
      const m = /^::vk-status (\d{3}) (\S+) (\S+) (\S+)$/.exec(line);
      if (m) calls.push({ status: Number(m[1]), expected: m[2]!, method: m[3]!, url: m[4]! });
    }
    const context = `stdout:\n${run.stdout.slice(-4000)}\nstderr:\n${run.stderr.slice(-4000)}`;
    const wrong = calls.filter((c) => (c.expected === '2xx' ? c.status < 200 || c.status > 299 : String(c.status) !== c.expected));
    expect(wrong, context).toEqual([]);
    expect(run.status, context).toBe(0);
    expect(calls.length, context).toBe(curlCount);
    expect(curlCount).toBeGreaterThan(30);
  });
});
