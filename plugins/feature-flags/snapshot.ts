import { readAllPages } from '../../src/pagination.js';
import type { DbOrTx } from '../../db/client.js';
import type { StateCache, StateEntry } from '../../src/state-cache.js';
import type { SnapshotItem, SnapshotSection } from '../../src/snapshot.js';
import { CreateFlagBody, type CreateFlag, type Flag } from './schemas.js';
import type { FlagService } from './service.js';
import { featureFlags } from './table.js';
import { inArray } from 'drizzle-orm';

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
      return (await readAllPages((q) => service.list(q))).map(portable);
    },
    async apply(tx: DbOrTx, plan) {
      // Order matters with prerequisites: new flags first without theirs, then every change,
      // then the new flags' prerequisites, and removals last, dependents before what they need.
      for (const item of plan.create) await service.create(tx, { ...(item as CreateFlag), prerequisites: [] });
      for (const item of plan.update) {
        const { key, ...fields } = item as CreateFlag;
        if (!(await service.update(tx, key, fields))) await service.create(tx, item as CreateFlag);
      }
      for (const item of plan.create) {
        const { key, prerequisites } = item as CreateFlag;
        if (prerequisites?.length) await service.update(tx, key, { prerequisites });
      }
      const doomed = new Set(plan.remove);
      const rows = doomed.size ? await tx.select({ key: featureFlags.key, prerequisites: featureFlags.prerequisites }).from(featureFlags).where(inArray(featureFlags.key, [...doomed])) : [];
      const needs = new Map(rows.map((r) => [r.key, r.prerequisites.map((p) => p.flagKey)]));
      while (doomed.size) {
        // A flag no other doomed flag requires can go now; a cycle cannot exist (the service refuses them).
        const next = [...doomed].find((key) => ![...doomed].some((other) => other !== key && (needs.get(other) ?? []).includes(key))) ?? [...doomed][0]!;
        await service.remove(tx, next);
        doomed.delete(next);
      }
      await stateCache.notify(tx, state.name);
    },
    afterCommit: async () => void (await state.reload()),
  };
}
