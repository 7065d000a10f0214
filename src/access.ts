import type { FastifyRequest } from 'fastify';

/**
 * Every scope a route may require and an API key may hold. One list, so a typo in a route's
 * `config.scope` fails at start-up and a key cannot be granted a scope nothing checks.
 *
 * How scopes satisfy each other (scopeSatisfies):
 * - `admin` satisfies every scope;
 * - `<area>:write` satisfies `<area>:read`;
 * - `system:read` satisfies every `<area>:read` (a read-only operator key).
 */
export const SCOPES = {
  'system:read': 'Read anything under /system: logs, errors, traces, health, routes, and every area below',
  'system:write': 'Kernel-level writes (template items and other system resources)',
  'clients:read': 'List API clients and their keys (never the secrets)',
  'rate-limits:read': 'Read rate-limit rules and current usage',
  'rate-limits:write': 'Create, change and delete rate-limit rules',
  'audit:read': 'Read the admin operations trail and verify its hash chain',
  'maintenance:read': 'Read the mode, scheduled windows and the change freeze',
  'maintenance:write': 'Change the mode, schedule windows, switch the change freeze',
  'config:read': 'Read configuration entries, history and the effective config',
  'config:write': 'Change configuration entries and roll them back',
  'flags:read': 'Read feature flags and evaluate them',
  'flags:write': 'Create, change and delete feature flags',
  'deployments:read': 'Read deployment profiles, deployments and smoke runs',
  'deployments:write': 'Change deployment profiles, record deployments, start smoke runs',
  admin: 'Everything, including API clients and keys and the change-freeze override',
} as const;

export type Scope = keyof typeof SCOPES;

export function isScope(value: string): value is Scope {
  return Object.hasOwn(SCOPES, value);
}

/** Whether a key holding `granted` may call a route that requires `required`. */
export function scopeSatisfies(granted: ReadonlySet<string>, required: string): boolean {
  if (granted.has(required) || granted.has('admin')) return true;
  const colon = required.lastIndexOf(':');
  if (colon < 0) return false;
  const area = required.slice(0, colon);
  const action = required.slice(colon + 1);
  if (action === 'read') return granted.has(`${area}:write`) || granted.has('system:read');
  return false;
}

/** The other scopes that satisfy `required` (scopeSatisfies), for documentation. */
export function alsoSatisfying(required: string): string[] {
  if (required === 'admin') return [];
  const colon = required.lastIndexOf(':');
  const area = required.slice(0, colon);
  const others = colon >= 0 && required.slice(colon + 1) === 'read' ? [`${area}:write`, 'system:read'] : [];
  return [...new Set([...others, 'admin'])].filter((s) => s !== required);
}

/**
 * The authenticated API client behind a request (set by the api-keys pack's onRequest hook,
 * null on public routes and before authentication).
 */
export interface Caller {
  clientId: number;
  clientName: string;
  /** Public key id (the part of the key before the secret). */
  keyId: string;
  scopes: ReadonlySet<string>;
  /** The client's own rate limit, overriding the rules' default when set. */
  rateLimit: { max: number; windowSeconds: number } | null;
  /** Requests per UTC day for the client, null for no quota. */
  dailyQuota: number | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller | null;
  }
}

/** Whether the request's caller holds `scope` (false when unauthenticated). */
export function hasScope(request: FastifyRequest, scope: Scope): boolean {
  return request.caller !== null && scopeSatisfies(request.caller.scopes, scope);
}
