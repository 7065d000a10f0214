import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';

/**
 * The web console (`/console`): one static page, a script and a stylesheet, no build step. The
 * page holds no data and needs no key; the script asks for an API key (kept in sessionStorage)
 * and calls the same /system API as any client, so every call is authenticated, scoped and
 * audited like the rest. The CSP forbids inline script and style: only these files run.
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

const ASSETS = [
  { url: '/console', file: 'index.html', type: 'text/html; charset=utf-8', summary: 'The web console (HTML page; asks for an API key)' },
  { url: '/console/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8', summary: "The web console's script" },
  { url: '/console/console.css', file: 'console.css', type: 'text/css; charset=utf-8', summary: "The web console's stylesheet" },
] as const;

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

const withSecurityHeaders = (reply: FastifyReply, type: string): FastifyReply =>
  reply
    .type(type)
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache');

export const consoleRoutes: FastifyPluginAsync = async (app) => {
  const dir = consoleDir();
  for (const asset of ASSETS) {
    const body = readFileSync(`${dir}${asset.file}`, 'utf8');
    app.get(
      asset.url,
      {
        // Public: the files hold no data. `shield: false`: the console is how an operator turns
        // maintenance mode off again. Hidden from the OpenAPI document (not a JSON API).
        config: { public: true, shield: false, trace: false },
        schema: { hide: true, tags: ['admin'], summary: asset.summary, response: { 200: Type.String() } },
      },
      async (_request, reply) => withSecurityHeaders(reply, asset.type).send(body),
    );
  }
};
