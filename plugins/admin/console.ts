import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';

/**
 * The web console (`/console`): one static page, its script and stylesheet, and the few library
 * files it imports (Preact, htm, uPlot) straight from node_modules: no build step. The page holds
 * no data and needs no key; the script asks for an API key (kept in sessionStorage) and calls the
 * same /system API as any client, so every call is authenticated, scoped and audited like the
 * rest. The CSP allows only these files to run: no inline script or style, no other origin.
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

/** The console's own files: they change with the kernel, so the browser revalidates them (ETag). */
const OWN_FILES = [
  { url: '/console', file: 'index.html', type: 'text/html; charset=utf-8', summary: 'The web console (HTML page; asks for an API key)' },
  { url: '/console/app.js', file: 'app.js', type: JS, summary: "The web console's script" },
  { url: '/console/console.css', file: 'console.css', type: CSS, summary: "The web console's stylesheet" },
  { url: '/console/favicon.svg', file: 'favicon.svg', type: 'image/svg+xml', summary: "The web console's icon" },
] as const;

/**
 * The library files the console imports, each one file with no imports of its own, served at a
 * URL that carries the installed version (`/console/vendor/preact@11.2.0/preact.mjs`), so they
 * are cached for a year and an upgrade changes the URL. Only these files: no directory is served.
 */
const VENDOR_FILES = [
  { pkg: 'preact', file: 'dist/preact.mjs', type: JS },
  { pkg: 'htm', file: 'dist/htm.mjs', type: JS },
  { pkg: 'uplot', file: 'dist/uPlot.esm.js', type: JS },
  { pkg: 'uplot', file: 'dist/uPlot.min.css', type: CSS },
] as const;

const require = createRequire(import.meta.url);

/** The installed package's folder and version: up from its resolved entry point to its package.json. */
function packageRoot(pkg: string): { dir: string; version: string } {
  let dir = path.dirname(require.resolve(pkg));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      const json = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (json.name === pkg && json.version) return { dir, version: json.version };
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`the console's library ${pkg} is not installed`);
    dir = parent;
  }
}

/** URL of a vendor file, as the page and script name it. */
export function vendorUrl(pkg: string, file: string): string {
  return `/console/vendor/${pkg}@${packageRoot(pkg).version}/${path.basename(file)}`;
}

/**
 * The files sit next to this module in the source tree; compiled code in dist/ finds them in the
 * project's plugins/ folder (or in a copy next to it, as the Dockerfile makes).
 */
function consoleDir(): string {
  const candidates = [new URL('./console/', import.meta.url), new URL('../../../plugins/admin/console/', import.meta.url)];
  for (const dir of candidates) {
    if (existsSync(new URL('index.html', dir))) return fileURLToPath(dir);
  }
  throw new Error(`admin console files not found (looked in ${candidates.map((c) => fileURLToPath(c)).join(', ')})`);
}

interface Asset {
  url: string;
  type: string;
  body: Buffer;
  etag: string;
  cacheControl: string;
  summary: string;
}

const asset = (url: string, type: string, body: Buffer, cacheControl: string, summary: string): Asset => ({
  url,
  type,
  body,
  etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
  cacheControl,
  summary,
});

/** The console's assets, read once at start; fails start-up when the page names a library file not served. */
export function consoleAssets(): Asset[] {
  const dir = consoleDir();
  const own = OWN_FILES.map((f) => asset(f.url, f.type, readFileSync(path.join(dir, f.file)), 'no-cache', f.summary));
  const vendor = VENDOR_FILES.map((f) =>
    asset(vendorUrl(f.pkg, f.file), f.type, readFileSync(path.join(packageRoot(f.pkg).dir, f.file)), 'public, max-age=31536000, immutable', `The web console's copy of ${f.pkg} (${path.basename(f.file)})`),
  );
  const served = new Set(vendor.map((v) => v.url));
  for (const file of own) {
    for (const named of file.body.toString('utf8').match(/\/console\/vendor\/[^"'`\s)]+/g) ?? []) {
      if (!served.has(named)) throw new Error(`the console's ${file.url} names ${named}, which is not served (installed: ${[...served].join(', ')})`);
    }
  }
  return [...own, ...vendor];
}

/** `If-None-Match` holding the tag (weakly compared, in a list, or `*`): RFC 9110 §13.1.2. */
function notModified(request: FastifyRequest, etag: string): boolean {
  const header = request.headers['if-none-match'];
  if (!header) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === etag;
  });
}

const withSecurityHeaders = (reply: FastifyReply, a: Asset): FastifyReply =>
  reply
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', a.cacheControl)
    .header('etag', a.etag);

export const consoleRoutes: FastifyPluginAsync = async (app) => {
  for (const a of consoleAssets()) {
    app.get(
      a.url,
      {
        // Public: the files hold no data. `shield: false`: the console is how an operator turns
        // maintenance mode off again. Hidden from the OpenAPI document (not a JSON API).
        config: { public: true, shield: false, trace: false },
        schema: { hide: true, tags: ['admin'], summary: a.summary, response: { 200: Type.String(), 304: Type.Null() } },
      },
      async (request, reply) => {
        withSecurityHeaders(reply, a);
        if (notModified(request, a.etag)) return reply.code(304).send();
        return reply.type(a.type).send(a.body);
      },
    );
  }
};
