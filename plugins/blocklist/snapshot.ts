import { Type, type Static } from '@sinclair/typebox';
import { eq, gt, isNull, or, sql } from 'drizzle-orm';
import type { Db, DbOrTx } from '../../db/client.js';
import type { SnapshotItem, SnapshotSection } from '../../src/snapshot.js';
import type { StateCache, StateEntry } from '../../src/state-cache.js';
import { IsoDate, Nullable, StrictObject } from '../../src/schemas.js';
import { ACTIONS, MODES, ORIGINS, SEVERITIES, TYPES } from './schemas.js';
import { invalidField, normaliseRuleValue } from './service.js';
import { blocklistRules, securityPolicies } from './table.js';

const Enum = <T extends string>(values: readonly T[]) => Type.Unsafe<T>({ type: 'string', enum: [...values] });

const PolicyItem = StrictObject({
  name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
  description: Type.String({ maxLength: 1000 }),
  enabled: Type.Boolean(),
  mode: Enum(MODES),
});

const RuleItem = StrictObject({
  policy: Nullable(Type.String({ minLength: 1, maxLength: 100 })),
  type: Enum(TYPES),
  action: Enum(ACTIONS),
  value: Type.String({ minLength: 1, maxLength: 512 }),
  severity: Enum(SEVERITIES),
  reason: Type.String({ maxLength: 500 }),
  origin: Enum(ORIGINS),
  expiresAt: Nullable(IsoDate()),
});

type RuleItemShape = Static<typeof RuleItem>;

const ruleKey = (item: SnapshotItem): string => `${String(item.policy ?? '')}|${String(item.type)}|${String(item.action)}|${String(item.value)}`;

/** A policy by name inside the import's transaction, created (enforce, enabled) if the snapshot's rules need it first. */
async function policyIdByName(tx: DbOrTx, name: string): Promise<number> {
  const [row] = await tx.select({ id: securityPolicies.id }).from(securityPolicies).where(eq(securityPolicies.name, name)).limit(1);
  if (row) return row.id;
  const [created] = await tx.insert(securityPolicies).values({ name }).returning({ id: securityPolicies.id });
  return created!.id;
}

async function currentRules(tx: DbOrTx): Promise<Array<RuleItemShape & { id: number }>> {
  const rows = await tx
    .select({
      id: blocklistRules.id,
      policy: securityPolicies.name,
      type: blocklistRules.type,
      action: blocklistRules.action,
      value: blocklistRules.value,
      severity: blocklistRules.severity,
      reason: blocklistRules.reason,
      origin: blocklistRules.origin,
      expiresAt: blocklistRules.expiresAt,
    })
    .from(blocklistRules)
    .leftJoin(securityPolicies, eq(securityPolicies.id, blocklistRules.policyId))
    .where(or(isNull(blocklistRules.expiresAt), gt(blocklistRules.expiresAt, sql`now()`)))
    .orderBy(blocklistRules.id);
  return rows.map((r) => ({ ...r, expiresAt: r.expiresAt?.toISOString() ?? null }));
}

/**
 * Policies and the rules that have not expired, as two snapshot sections. Policies are keyed by
 * name, rules by (policy name, type, action, value); either section can be applied first (a
 * rule naming a policy not there yet creates it, the policies section then sets it up).
 */
export function blocklistSnapshotSections(db: Db, stateCache: Pick<StateCache, 'notify'>, state: StateEntry<unknown>): SnapshotSection[] {
  const afterCommit = async () => void (await state.reload());
  return [
    {
      name: 'blocklist_policies',
      description: 'Security policies (name, enabled, enforce/monitor)',
      itemSchema: PolicyItem,
      keyOf: (item) => String(item.name),
      read: async () => {
        const rows = await db.select().from(securityPolicies).orderBy(securityPolicies.id);
        return rows.map(({ name, description, enabled, mode }) => ({ name, description, enabled, mode }));
      },
      async apply(tx, plan) {
        for (const name of plan.remove) await tx.delete(securityPolicies).where(eq(securityPolicies.name, name));
        for (const item of [...plan.update, ...plan.create]) {
          const { name, description, enabled, mode } = item as { name: string; description: string; enabled: boolean; mode: 'enforce' | 'monitor' };
          await tx
            .insert(securityPolicies)
            .values({ name, description, enabled, mode })
            .onConflictDoUpdate({ target: securityPolicies.name, set: { description, enabled, mode, updatedAt: new Date() } });
        }
        await stateCache.notify(tx, state.name);
      },
      afterCommit,
    },
    {
      name: 'blocklist_rules',
      description: 'Blocklist and allowlist rules that have not expired',
      itemSchema: RuleItem,
      keyOf: ruleKey,
      read: async () => (await currentRules(db)).map(({ id: _id, ...item }) => item),
      async apply(tx, plan) {
        const ids = new Map((await currentRules(tx)).map((r) => [ruleKey(r), r.id]));
        for (const key of plan.remove) {
          const id = ids.get(key);
          if (id !== undefined) await tx.delete(blocklistRules).where(eq(blocklistRules.id, id));
        }
        for (const raw of [...plan.update, ...plan.create]) {
          const item = raw as RuleItemShape;
          const v = normaliseRuleValue(item.type, item.value);
          // The whole import rolls back: a hand-edited snapshot with a bad value changes nothing.
          if ('error' in v) throw invalidField(`/sections/blocklist_rules`, `rule '${ruleKey(item)}': value ${v.error}`);
          const policyId = item.policy === null ? null : await policyIdByName(tx, item.policy);
          const fields = { severity: item.severity, reason: item.reason, origin: item.origin, expiresAt: item.expiresAt === null ? null : new Date(item.expiresAt), updatedAt: new Date() };
          const id = ids.get(ruleKey(item));
          if (id !== undefined) await tx.update(blocklistRules).set(fields).where(eq(blocklistRules.id, id));
          else {
            await tx
              .insert(blocklistRules)
              .values({ policyId, type: item.type, action: item.action, value: v.value, ...fields })
              .onConflictDoUpdate({ target: [blocklistRules.policyId, blocklistRules.type, blocklistRules.action, blocklistRules.value], set: fields });
          }
        }
        await stateCache.notify(tx, state.name);
      },
      afterCommit,
    },
  ];
}
