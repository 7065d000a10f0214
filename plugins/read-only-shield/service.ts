import type { Mode } from '../maintenance/index.js';

/**
 * What the shield decides for one request, without Fastify: a pure function of the effective
 * mode, the method, what the route declares and what the caller may do. The hook reads all of
 * it from memory.
 */
export interface RouteFacts {
  /** Route template (`/system/maintenance/windows/:id`); undefined for no route. */
  url: string | undefined;
  /** Answered by the not-found handler (unknown route or method): never shielded. */
  notFound: boolean;
  public: boolean;
  /** `config.shield`; `false` opts the route out, `'read'` makes a POST count as a read. */
  shield: boolean | 'read' | undefined;
}

export interface CallerRights {
  admin: boolean;
  maintenanceWrite: boolean;
}

export type ShieldVerdict = 'pass' | 'read-only' | 'maintenance';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const under = (url: string, prefix: string): boolean => url === prefix || url.startsWith(`${prefix}/`);

/**
 * Routes that answer whatever the mode: declared public (probes, metrics, docs, problem
 * documentation) and explicit opt-outs; the route index reports the same rule.
 */
export function alwaysOpen(route: RouteFacts): boolean {
  return route.notFound || route.shield === false || route.public;
}

/**
 * The endpoints that turn the mode off stay usable for whoever may change it: the maintenance
 * endpoints for `maintenance:write` or `admin`, the admin console's endpoints for `admin`.
 */
export function controlPlaneOpen(url: string | undefined, rights: () => CallerRights): boolean {
  if (url === undefined) return false;
  if (under(url, '/system/maintenance')) {
    const r = rights();
    return r.admin || r.maintenanceWrite;
  }
  if (under(url, '/system/admin')) return rights().admin;
  return false;
}

export function shieldVerdict(mode: Mode, method: string, route: RouteFacts, rights: () => CallerRights): ShieldVerdict {
  if (mode === 'normal' || alwaysOpen(route)) return 'pass';
  if (mode === 'read_only' && (SAFE_METHODS.has(method) || route.shield === 'read')) return 'pass';
  if (controlPlaneOpen(route.url, rights)) return 'pass';
  return mode === 'read_only' ? 'read-only' : 'maintenance';
}

/** Whole seconds until `until` (at least 1), for `Retry-After`; undefined when the end is unknown. */
export function retryAfterSeconds(until: Date | null, now: number): number | undefined {
  if (!until) return undefined;
  return Math.max(1, Math.ceil((until.getTime() - now) / 1000));
}
