import { desc, eq, lt } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { decodeCursor, decodeIdCursor, toPage, type Page, type PageQuery } from '../../src/pagination.js';
import type { RouteEntry } from '../../src/kernel.js';
import { ProblemError } from '../../src/problem.js';
import { COMPARED_FIELDS, type RouteDiff, type RouteFilter, type RouteInfo, type RouteVersion } from './schemas.js';
import { routeIndex, routeIndexVersions } from './table.js';

/** Stable order for the catalogue (url, then method), so a `[url, method]` cursor pages it. */
type RouteKey = Pick<RouteInfo, 'method' | 'url'>;
const byUrlThenMethod = (a: RouteKey, b: RouteKey): number =>
  a.url < b.url ? -1 : a.url > b.url ? 1 : a.method < b.method ? -1 : a.method > b.method ? 1 : 0;

const routeKey = (r: RouteKey): string => `${r.method} ${r.url}`;

/**
 * One catalogue entry as the index shows it. The shield (UJ) applies unless the route is public
 * or opts out with `config.shield: false`.
 */
export function describeRoute(entry: RouteEntry, rateLimited: (entry: RouteEntry) => boolean): RouteInfo {
  return {
    method: entry.method,
    url: entry.url,
    pack: entry.pack,
    summary: entry.summary,
    tags: [...entry.tags],
    scope: entry.scope,
    public: entry.public,
    shield: entry.config.shield !== false && !entry.public,
    rateLimited: rateLimited(entry),
  };
}

/** Filters and pages the in-memory catalogue (a few hundred routes at most: no database). */
export function listRoutes(routes: readonly RouteInfo[], f: RouteFilter & { limit: number }): Page<RouteInfo> {
  let after: RouteKey | undefined;
  const key = decodeCursor(f.cursor, 2);
  if (key) {
    const [url, method] = key;
    if (typeof url !== 'string' || typeof method !== 'string') throw new ProblemError('invalid-cursor', { detail: 'The cursor is not valid for this list.' });
    after = { url, method };
  }
  const rows = routes
    .filter(
      (r) =>
        (f.pack === undefined || r.pack === f.pack) &&
        (f.method === undefined || r.method === f.method) &&
        (f.prefix === undefined || r.url.startsWith(f.prefix)) &&
        (f.scope === undefined || r.scope === f.scope) &&
        (f.public === undefined || r.public === f.public) &&
        (after === undefined || byUrlThenMethod(r, after) > 0),
    )
    .sort(byUrlThenMethod)
    .slice(0, f.limit + 1);
  return toPage(rows, f.limit, (r) => [r.url, r.method], (r) => r);
}

/** Compares two recorded versions route by route. */
export function diffRoutes(from: string, fromRoutes: RouteInfo[], to: string, toRoutes: RouteInfo[]): RouteDiff {
  const before = new Map(fromRoutes.map((r) => [routeKey(r), r]));
  const after = new Map(toRoutes.map((r) => [routeKey(r), r]));
  const diff: RouteDiff = { from, to, added: [], removed: [], changed: [] };
  for (const [k, r] of after) if (!before.has(k)) diff.added.push(r);
  for (const [k, r] of before) if (!after.has(k)) diff.removed.push(r);
  for (const [k, next] of after) {
    const prev = before.get(k);
    if (!prev) continue;
    const changes: Record<string, { from: unknown; to: unknown }> = {};
    for (const field of COMPARED_FIELDS) {
      if (JSON.stringify(prev[field]) !== JSON.stringify(next[field])) changes[field] = { from: prev[field], to: next[field] };
    }
    if (Object.keys(changes).length) diff.changed.push({ method: next.method, url: next.url, changes });
  }
  for (const list of [diff.added, diff.removed]) list.sort(byUrlThenMethod);
  diff.changed.sort(byUrlThenMethod);
  return diff;
}

type RouteRow = typeof routeIndex.$inferSelect;
const toRouteInfo = (r: RouteRow): RouteInfo => ({
  method: r.method,
  url: r.url,
  pack: r.pack,
  summary: r.summary,
  tags: r.tags,
  scope: r.scope,
  public: r.public,
  shield: r.shield,
  rateLimited: r.rateLimited,
});

/** The recorded route sets, one per instance version. */
export function createRouteIndexService(deps: { db: Db }) {
  const { db } = deps;

  async function routesOf(version: string): Promise<RouteInfo[] | undefined> {
    const [known] = await db.select({ id: routeIndexVersions.id }).from(routeIndexVersions).where(eq(routeIndexVersions.version, version));
    if (!known) return undefined;
    const rows = await db.select().from(routeIndex).where(eq(routeIndex.version, version));
    return rows.map(toRouteInfo);
  }

  return {
    /**
     * Records `routes` as `version`'s, once: the first instance of a version inserts the version
     * row and its routes in one transaction; any other (even one starting at the same moment,
     * which waits on the unique index and then conflicts) records nothing.
     */
    async record(version: string, instanceId: string, routes: readonly RouteInfo[]): Promise<boolean> {
      return db.transaction(async (tx) => {
        const [created] = await tx
          .insert(routeIndexVersions)
          .values({ version, instanceId, routeCount: routes.length })
          .onConflictDoNothing({ target: routeIndexVersions.version })
          .returning({ id: routeIndexVersions.id });
        if (!created) return false;
        if (routes.length) {
          await tx
            .insert(routeIndex)
            .values(routes.map((r) => ({ ...r, version })))
            .onConflictDoNothing();
        }
        return true;
      });
    },

    /** Newest recorded first; keyset on id. */
    async versions(q: PageQuery & { limit: number }, current: string): Promise<Page<RouteVersion>> {
      const beforeId = decodeIdCursor(q.cursor);
      const rows = await db
        .select()
        .from(routeIndexVersions)
        .where(beforeId === undefined ? undefined : lt(routeIndexVersions.id, beforeId))
        .orderBy(desc(routeIndexVersions.id))
        .limit(q.limit + 1);
      return toPage(rows, q.limit, (r) => [r.id], (r) => ({
        id: r.id,
        version: r.version,
        routeCount: r.routeCount,
        recordedBy: r.instanceId,
        recordedAt: r.createdAt.toISOString(),
        current: r.version === current,
      }));
    },

    routesOf,

    /** `{ unknown }` names a version that was never recorded. */
    async diff(from: string, to: string): Promise<RouteDiff | { unknown: string }> {
      const [a, b] = await Promise.all([routesOf(from), routesOf(to)]);
      if (!a) return { unknown: from };
      if (!b) return { unknown: to };
      return diffRoutes(from, a, to, b);
    },
  };
}
export type RouteIndexService = ReturnType<typeof createRouteIndexService>;
