import { readAllPages } from '../../src/pagination.js';
import type { DbOrTx } from '../../db/client.js';
import type { StateCache, StateEntry } from '../../src/state-cache.js';
import type { SnapshotItem, SnapshotSection } from '../../src/snapshot.js';
import { CreateRateLimitBody, type CreateRateLimit, type RateLimitRule } from './schemas.js';
import type { RateLimitService } from './service.js';
import { rateLimits } from './table.js';

/** A rule's identity is what its unique constraint covers: scope, match and route. */
const keyOf = (item: SnapshotItem): string => `${String(item.scope)}|${String(item.match ?? '*')}|${item.route === null || item.route === undefined ? '' : String(item.route)}`;

const portable = (r: RateLimitRule): SnapshotItem => ({ scope: r.scope, match: r.match, route: r.route, max: r.max, windowSeconds: r.windowSeconds, enabled: r.enabled, description: r.description });

const allRules = (service: RateLimitService): Promise<RateLimitRule[]> => readAllPages((q) => service.list(q));

/** Rate-limit rules in a snapshot; an import writes through the rule service and reloads every instance's index. */
export function ruleSnapshotSection(service: RateLimitService, stateCache: Pick<StateCache, 'notify'>, state: StateEntry<unknown>): SnapshotSection {
  return {
    name: 'rate_limits',
    description: 'Rate-limit rules (scope, match, route, max per window)',
    itemSchema: CreateRateLimitBody,
    keyOf,
    read: async () => (await allRules(service)).map(portable),
    async apply(tx: DbOrTx, plan) {
      // Inside the import's transaction (on PGlite a query outside it would wait for it forever).
      const rows = await tx.select({ id: rateLimits.id, scope: rateLimits.scope, match: rateLimits.match, route: rateLimits.route }).from(rateLimits);
      const ids = new Map(rows.map((r) => [keyOf(r), r.id]));
      // The plan was computed before this transaction: a rule gone meanwhile is removed already, or created again.
      for (const key of plan.remove) {
        const id = ids.get(key);
        if (id !== undefined) await service.remove(tx, id);
      }
      for (const item of plan.update) {
        const id = ids.get(keyOf(item));
        const { max, windowSeconds, enabled, description } = item as CreateRateLimit;
        if (id === undefined) await service.create(tx, item as CreateRateLimit);
        else await service.update(tx, id, { max, windowSeconds, ...(enabled !== undefined && { enabled }), ...(description !== undefined && { description }) });
      }
      for (const item of plan.create) await service.create(tx, item as CreateRateLimit);
      await stateCache.notify(tx, state.name);
    },
    afterCommit: async () => void (await state.reload()),
  };
}
