import { readAllPages } from '../../src/pagination.js';
import { Type } from '@sinclair/typebox';
import type { DbOrTx } from '../../db/client.js';
import { StrictObject } from '../../src/schemas.js';
import type { StateCache, StateEntry } from '../../src/state-cache.js';
import type { SnapshotItem, SnapshotSection } from '../../src/snapshot.js';
import { CONFIG_TYPES, ConfigKey, Environment, type ConfigEntry, type ConfigType } from './schemas.js';
import type { ConfigService } from './service.js';

const EntryItem = StrictObject({
  key: ConfigKey,
  environment: Environment,
  value: Type.Unknown(),
  type: Type.Union(CONFIG_TYPES.map((t) => Type.Literal(t))),
  description: Type.String({ maxLength: 1000 }),
});

const keyOf = (item: SnapshotItem): string => `${String(item.environment)}/${String(item.key)}`;
const portable = (e: ConfigEntry): SnapshotItem => ({ key: e.key, environment: e.environment, value: e.value, type: e.type, description: e.description });

/**
 * Configuration entries of every environment in a snapshot. An import writes each through the
 * registry's own checks (types, size, no secrets) and history, as the importing actor.
 */
export function configSnapshotSection(service: ConfigService, stateCache: Pick<StateCache, 'notify'>, state: StateEntry<unknown>): SnapshotSection {
  return {
    name: 'config',
    description: 'Configuration registry entries, every environment (values carry no secrets: the registry refuses them)',
    itemSchema: EntryItem,
    keyOf,
    async read() {
      return (await readAllPages((q) => service.list(q))).map(portable);
    },
    async apply(tx: DbOrTx, plan, ctx) {
      const meta = { actor: ctx.actor, reason: 'snapshot import', correlationId: ctx.correlationId };
      for (const key of plan.remove) {
        const slash = key.indexOf('/');
        await service.remove(tx, key.slice(slash + 1), key.slice(0, slash), undefined, meta);
      }
      for (const item of [...plan.create, ...plan.update]) {
        await service.put(tx, String(item.key), String(item.environment), { value: item.value, type: item.type as ConfigType, description: String(item.description) }, meta);
      }
      await stateCache.notify(tx, state.name);
    },
    afterCommit: async () => void (await state.reload()),
  };
}
