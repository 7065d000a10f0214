import type { CONTENT_TYPES, RESPONSE_STATUSES, TEMPLATES } from './schemas.js';
import { normalisePath } from '../../src/request-path.js';

type Status = (typeof RESPONSE_STATUSES)[number];
type ContentType = (typeof CONTENT_TYPES)[number];

export interface DecoyResponse {
  status: Status;
  contentType: ContentType;
  body: string;
}

const HTML = 'text/html; charset=utf-8';

/**
 * Ready-made answers that look like what a scanner hopes to find (or a dull refusal), so a decoy
 * does not give itself away with the API's problem+json. The "secrets" are invented.
 */
/** A decoy's answer when neither a template nor the fields say otherwise. */
export const DEFAULT_DECOY_RESPONSE: DecoyResponse = { status: 404, contentType: 'text/plain; charset=utf-8', body: 'Not Found' };

export const DECOY_TEMPLATES: Record<(typeof TEMPLATES)[number], DecoyResponse> = {
  dotenv: {
    status: 200,
    contentType: 'text/plain; charset=utf-8',
    body: [
      'APP_ENV=production',
      'APP_DEBUG=false',
      'APP_URL=https://app.internal',
      'DB_CONNECTION=pgsql',
      'DB_HOST=10.20.3.14',
      'DB_PORT=5432',
      'DB_DATABASE=app_prod',
      'DB_USERNAME=app',
      'DB_PASSWORD=Kv8#pL2m!qR7',
      'REDIS_HOST=10.20.3.15',
      'MAIL_HOST=smtp.mailgun.org',
      '',
    ].join('\n'),
  },
  'wp-login': {
    status: 200,
    contentType: HTML,
    body:
      '<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8"><title>Log In &lsaquo; Blog &#8212; WordPress</title></head>' +
      '<body class="login wp-core-ui"><div id="login"><h1><a href="https://wordpress.org/">Powered by WordPress</a></h1>' +
      '<form name="loginform" id="loginform" action="/wp-login.php" method="post"><p><label for="user_login">Username or Email Address</label>' +
      '<input type="text" name="log" id="user_login" class="input" size="20" autocapitalize="off" autocomplete="username"></p>' +
      '<p><label for="user_pass">Password</label><input type="password" name="pwd" id="user_pass" class="input" size="20" autocomplete="current-password"></p>' +
      '<p class="submit"><input type="submit" name="wp-submit" id="wp-submit" class="button button-primary button-large" value="Log In"></p></form></div></body></html>',
  },
  'admin-login': {
    status: 200,
    contentType: HTML,
    body:
      '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Administration - Sign in</title></head><body>' +
      '<form method="post" action=""><h1>Sign in</h1><label>User <input name="username" autocomplete="username"></label>' +
      '<label>Password <input name="password" type="password" autocomplete="current-password"></label><button type="submit">Sign in</button></form></body></html>',
  },
  'json-unauthorized': { status: 401, contentType: 'application/json; charset=utf-8', body: '{"error":"unauthorized","message":"Invalid or missing token"}' },
  'not-found': {
    status: 404,
    contentType: HTML,
    body: '<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n',
  },
};

/**
 * The form decoy paths are stored and compared in: the request path as the blocklist sees it
 * (src/request-path.ts: no query, percent-decoded, `\` as `/`, `.` and `..` resolved, `//`
 * collapsed), then no trailing slash and lower case. Scanners
 * vary case and encoding (`/.ENV`, `/%2eenv`, `//wp-login.php/`); they still hit the decoy.
 */
export function normaliseDecoyPath(raw: string): string {
  const path = normalisePath(raw);
  return (path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path).toLowerCase();
}

/** How a decoy path is stored: normalised, keeping a trailing `/*` (a prefix decoy). */
export function canonicalDecoyPath(raw: string): string {
  const prefix = raw.endsWith('/*');
  const path = normaliseDecoyPath(prefix ? raw.slice(0, -2) : raw);
  return prefix ? `${path === '/' ? '' : path}/*` : path;
}

/** A stored decoy path ending in `/*` covers everything below its prefix. */
export const isPrefixDecoy = (path: string): boolean => path.endsWith('/*');

export interface DecoySet<T> {
  /** The decoy a request path hits, if any (exact first, then the longest prefix). */
  match(rawPath: string): T | undefined;
  readonly size: number;
}

export function buildDecoySet<T>(decoys: ReadonlyArray<{ path: string; value: T }>): DecoySet<T> {
  const exact = new Map<string, T>();
  const prefixes = new Map<string, T>();
  for (const d of decoys) {
    if (isPrefixDecoy(d.path)) prefixes.set(d.path.slice(0, -2) || '/', d.value);
    else exact.set(d.path, d.value);
  }
  return {
    size: exact.size + prefixes.size,
    match(rawPath) {
      if (exact.size === 0 && prefixes.size === 0) return undefined;
      const path = normaliseDecoyPath(rawPath);
      const hit = exact.get(path);
      if (hit !== undefined || prefixes.size === 0) return hit;
      for (let p = path; p.length > 0; p = p.slice(0, Math.max(p.lastIndexOf('/'), 0))) {
        const covered = prefixes.get(p);
        if (covered !== undefined) return covered;
      }
      return undefined;
    },
  };
}
