import type { IncomingMessage } from 'node:http';

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * The request target in origin form (`/path?query`), as the router serves it.
 * HTTP/1.1 lets a client send the absolute form (`GET http://any-host/path`, RFC 9112 §3.2.2)
 * and servers must accept it; the router then serves `/path`, but every hook reading
 * `request.url` (the blocklist's path rules, per-route rate limits, honeypot decoys, logs) would
 * see `http://any-host/path` and miss. Rewritten once here (Fastify's `rewriteUrl`), before
 * routing, so everything sees the path that is served; the authority a client wrote is dropped
 * (the `Host` header is what names the host).
 */
export function originForm(req: IncomingMessage): string {
  const url = req.url ?? '/';
  if (url.startsWith('/')) return url;
  const authority = ABSOLUTE_FORM.exec(url);
  if (!authority) return url;
  const rest = url.slice(authority[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}
