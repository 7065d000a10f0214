import { and, asc, eq, gt, type SQL } from 'drizzle-orm';
import type { Db, DbOrTx } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique, ProblemError } from '../../src/problem.js';
import { buildRuleIndex, matchError, normalizeMatch, parseRoutePattern, type RuleIndex, type RuleScope } from './rules.js';
import type { CreateRateLimit, RateLimitFilter, RateLimitRule, UpdateRateLimit } from './schemas.js';
import { rateLimits } from './table.js';

type RateLimitRow = typeof rateLimits.$inferSelect;

const toRule = (row: RateLimitRow): RateLimitRule => ({
  id: row.id,
  scope: row.scope as RuleScope, // the table's check constraint holds it to RULE_SCOPES
  match: row.match,
  route: row.route === '' ? null : row.route,
  max: row.max,
  windowSeconds: row.windowSeconds,
  enabled: row.enabled,
  description: row.description,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});


interface RuleShape {
  scope: RuleScope;
  match: string;
  route: string | null;
}

const invalid = (pointer: string, message: string) =>
  new ProblemError('validation-failed', { detail: 'The rule is not valid.', errors: [{ in: 'body', pointer: `#/${pointer}`, message }] });

/**
 * Checks what the schema cannot (match and route depend on the scope) and returns the stored
 * form: IP addresses canonical, route patterns normalised, '' for "no route".
 */
function normalizeShape(shape: RuleShape): { scope: RuleScope; match: string; route: string } {
  const error = matchError(shape.scope, shape.match);
  if (error) throw invalid('match', error);
  let route = '';
  if (shape.scope === 'route') {
    if (!shape.route) throw invalid('route', 'a route rule needs a route pattern');
    const parsed = parseRoutePattern(shape.route);
    if ('error' in parsed) throw invalid('route', parsed.error);
    route = parsed.normalized;
  } else if (shape.route) {
    throw invalid('route', 'only route rules take a route pattern');
  }
  return { scope: shape.scope, match: normalizeMatch(shape.scope, shape.match), route };
}

function rethrowDuplicate(shape: { scope: string; match: string; route: string }) {
  const what = `${shape.scope} ${shape.match}${shape.route ? ` ${shape.route}` : ''}`;
  return conflictOnUnique(`A rate-limit rule for '${what}' already exists.`, { scope: shape.scope, match: shape.match, route: shape.route || null });
}

/**
 * Rate-limit rules, without HTTP: reads take the pool, writes take the caller's transaction so
 * the audit entry and the state-cache notification commit with them.
 */
export function createRateLimitService(deps: { db: Db }) {
  const { db } = deps;
  return {
    async list(filter: RateLimitFilter & { limit: number }): Promise<Page<RateLimitRule>> {
      const where: SQL[] = [];
      if (filter.scope) where.push(eq(rateLimits.scope, filter.scope));
      if (filter.enabled !== undefined) where.push(eq(rateLimits.enabled, filter.enabled));
      const afterId = decodeIdCursor(filter.cursor);
      if (afterId !== undefined) where.push(gt(rateLimits.id, afterId));
      const rows = await db
        .select()
        .from(rateLimits)
        .where(where.length ? and(...where) : undefined)
        .orderBy(asc(rateLimits.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toRule);
    },

    async byId(id: number): Promise<RateLimitRule | undefined> {
      const [row] = await db.select().from(rateLimits).where(eq(rateLimits.id, id)).limit(1);
      return row && toRule(row);
    },

    /** What the hot path holds in memory: the enabled rules, indexed for lookup. */
    async loadIndex(): Promise<RuleIndex<RateLimitRule>> {
      const rows = await db.select().from(rateLimits).where(eq(rateLimits.enabled, true)).orderBy(asc(rateLimits.id));
      return buildRuleIndex(rows.map(toRule));
    },

    async create(tx: DbOrTx, input: CreateRateLimit): Promise<RateLimitRule> {
      const shape = normalizeShape({ scope: input.scope, match: input.match ?? '*', route: input.route ?? null });
      const [row] = await tx
        .insert(rateLimits)
        .values({ ...shape, max: input.max, windowSeconds: input.windowSeconds, enabled: input.enabled ?? true, description: input.description ?? '' })
        .returning()
        .catch(rethrowDuplicate(shape));
      return toRule(row!);
    },

    /** Undefined when there is no such rule. */
    async update(tx: DbOrTx, id: number, patch: UpdateRateLimit): Promise<{ before: RateLimitRule; after: RateLimitRule } | undefined> {
      const [current] = await tx.select().from(rateLimits).where(eq(rateLimits.id, id)).for('update');
      if (!current) return undefined;
      const before = toRule(current);
      // A patch that changes the scope alone (e.g. route → ip) must also drop what no longer fits.
      const route = patch.route !== undefined ? patch.route : patch.scope && patch.scope !== 'route' ? null : before.route;
      const shape = normalizeShape({ scope: patch.scope ?? before.scope, match: patch.match ?? before.match, route });
      const [row] = await tx
        .update(rateLimits)
        .set({
          ...shape,
          ...(patch.max !== undefined && { max: patch.max }),
          ...(patch.windowSeconds !== undefined && { windowSeconds: patch.windowSeconds }),
          ...(patch.enabled !== undefined && { enabled: patch.enabled }),
          ...(patch.description !== undefined && { description: patch.description }),
          updatedAt: new Date(),
        })
        .where(eq(rateLimits.id, id))
        .returning()
        .catch(rethrowDuplicate(shape));
      return { before, after: toRule(row!) };
    },

    async remove(tx: DbOrTx, id: number): Promise<RateLimitRule | undefined> {
      const [row] = await tx.delete(rateLimits).where(eq(rateLimits.id, id)).returning();
      return row && toRule(row);
    },
  };
}
export type RateLimitService = ReturnType<typeof createRateLimitService>;
