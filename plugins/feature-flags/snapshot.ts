import type { DbOrTx } from '../../db/client.js';
import type { StateCache, StateEntry } from '../../src/state-cache.js';
import type { SnapshotItem, SnapshotSection } from '../../src/snapshot.js';
import { CreateFlagBody, type CreateFlag, type Flag } from './schemas.js';
import type { FlagService } from './service.js';

/** The settable fields of a flag: what a snapshot carries and an import writes back. */
const portable = (f: Flag): SnapshotItem => ({
  key: f.key,
  description: f.description,
  type: f.type,
  enabled: f.enabled,
  rolloutPercentage: f.rolloutPercentage,
  variants: f.variants,
  rules: f.rules,
  prerequisites: f.prerequisites,
  defaultValue: f.defaultValue,
  offValue: f.offValue,
});

/** Feature flags in a snapshot; an import writes through the flag service and recompiles every instance. */
export function flagSnapshotSection(service: FlagService, stateCache: Pick<StateCache, 'notify'>, state: StateEntry<unknown>): SnapshotSection {
  return {
    name: 'feature_flags',
    description: 'Feature flags with their rules, variants and prerequisites',
    itemSchema: CreateFlagBody,
    keyOf: (item) => String(item.key),
    async read() {
      const items: SnapshotItem[] = [];
      let cursor: string | undefined;
      do {
        const page = await service.list({ limit: 500, cursor });
        items.push(...page.items.map(portable));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      return items;
    },
    async apply(tx: DbOrTx, plan) {
      for (const key of plan.remove) await service.remove(tx, key);
      // Created first without prerequisites, so flags that require one another can be created in any order.
      for (const item of plan.create) await service.create(tx, { ...(item as CreateFlag), prerequisites: [] });
      for (const item of plan.create) {
        const { key, prerequisites } = item as CreateFlag;
        if (prerequisites?.length) await service.update(tx, key, { prerequisites });
      }
      for (const item of plan.update) {
        const { key, ...fields } = item as CreateFlag;
        await service.update(tx, key, fields);
      }
      await stateCache.notify(tx, state.name);
    },
    afterCommit: async () => void (await state.reload()),
  };
}
