import { readAllPages } from '../../src/pagination.js';
import { Type } from '@sinclair/typebox';
import { StrictObject } from '../../src/schemas.js';
import type { SnapshotSection } from '../../src/snapshot.js';
import { MAX_RETAIN_DAYS } from './schemas.js';
import type { RetentionService } from './service.js';

const PolicyItem = StrictObject({
  category: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z][a-z0-9_]*$' }),
  retainDays: Type.Integer({ minimum: 1, maximum: MAX_RETAIN_DAYS }),
  enabled: Type.Boolean(),
});

/** Retention policies in a snapshot (the floor still applies on import). */
export function policySnapshotSection(service: RetentionService): SnapshotSection {
  return {
    name: 'retention_policies',
    description: 'Retention policies per category',
    itemSchema: PolicyItem,
    keyOf: (item) => String(item.category),
    async read() {
      return (await readAllPages((q) => service.list(q))).map((p) => ({ category: p.category, retainDays: p.retainDays, enabled: p.enabled }));
    },
    async apply(tx, plan) {
      for (const category of plan.remove) await service.remove(tx, category);
      for (const item of plan.create) await service.create(tx, { category: String(item.category), retainDays: Number(item.retainDays), enabled: item.enabled === true });
      for (const item of plan.update) {
        const wanted = { category: String(item.category), retainDays: Number(item.retainDays), enabled: item.enabled === true };
        // The plan was computed before this transaction: a policy deleted meanwhile is created again.
        if (!(await service.update(tx, wanted.category, wanted))) await service.create(tx, wanted);
      }
    },
  };
}
