import type { FastifyRequest } from 'fastify';

/**
 * Scopes: what a route requires (`config.scope`) and an API key holds. The kernel declares only
 * its own; every other scope is declared by the pack that checks it, in `definePack({ scopes })`,
 * and the kernel collects those of the loaded packs (`app.scopes`). A route naming a scope that
 * no loaded pack declares stops the start-up (a typo would lock everyone out).
 *
 * How scopes satisfy each other (scopeSatisfies):
 * - `admin` satisfies every scope;
 * - `<area>:write` satisfies `<area>:read`;
 * - `system:read` satisfies every `<area>:read` (a read-only operator key).
 */
export const KERNEL_SCOPES = {
  'system:read': 'Read anything under /system: logs, errors, traces, health, routes, and every area\'s `<area>:read`',
  'system:write': 'Kernel-level writes that belong to no pack\'s own area',
  admin: 'Everything, including API clients and keys and the change-freeze override',
} as const;

/** Scope name → what it allows, as a pack declares them. */
export type ScopeDescriptions = Readonly<Record<string, string>>;

/**
 * Every scope as a type, so a typo in `config.scope`, `hasScope` or a test's `keyWith` is a
 * compile error. A pack adds its own next to its definition:
 *
 *   const scopes = { 'widgets:read': '...', 'widgets:write': '...' } as const;
 *   declare module '../../src/access.js' {
 *     interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
 *   }
 */
export interface ScopeRegistry extends DeclaredScopes<typeof KERNEL_SCOPES> {}
export type DeclaredScopes<T extends ScopeDescriptions> = Record<keyof T & string, string>;
export type Scope = keyof ScopeRegistry & string;

/** `<area>:<action>`, lower-case kebab on both sides (`rate-limits:write`). */
export const PACK_SCOPE_NAME = /^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*$/;

export interface ScopeEntry {
  scope: string;
  description: string;
  /** Pack that declares it; null for the kernel's own. */
  pack: string | null;
}

/** The scopes of this instance: the kernel's and those of every loaded pack. */
export interface ScopeCatalog {
  has(scope: string): boolean;
  /** Every scope, the kernel's first, then each pack's in list order. */
  readonly entries: ReadonlyArray<ScopeEntry>;
  readonly names: readonly string[];
}

/** Collects the scopes of the loaded packs; two packs declaring one scope is a configuration error. */
export function createScopeCatalog(packs: ReadonlyArray<{ name: string; scopes: ScopeDescriptions }>): ScopeCatalog {
  const byName = new Map<string, ScopeEntry>();
  for (const [scope, description] of Object.entries(KERNEL_SCOPES)) byName.set(scope, { scope, description, pack: null });
  for (const pack of packs) {
    for (const [scope, description] of Object.entries(pack.scopes)) {
      const taken = byName.get(scope);
      if (taken) {
        throw new Error(`pack '${pack.name}' declares scope '${scope}', which ${taken.pack === null ? 'the kernel' : `pack '${taken.pack}'`} already declares`);
      }
      byName.set(scope, { scope, description, pack: pack.name });
    }
  }
  const entries = [...byName.values()];
  return { has: (scope) => byName.has(scope), entries, names: entries.map((e) => e.scope) };
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
