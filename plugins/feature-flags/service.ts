import { and, asc, eq, gt, like, sql, type SQL } from 'drizzle-orm';
import { type Db, type DbOrTx, likePrefix, lockKey } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique, ProblemError, type ProblemErrorItem } from '../../src/problem.js';
import { flagsInCycles, type FlagDefinition } from './evaluate.js';
import type { CreateFlag, Flag, FlagFilter, UpdateFlag } from './schemas.js';
import { featureFlags } from './table.js';
import { parseSemver } from './semver.js';

type FlagRow = typeof featureFlags.$inferSelect;

const toFlag = (row: FlagRow): Flag => ({
  id: row.id,
  key: row.key,
  description: row.description,
  type: row.type,
  enabled: row.enabled,
  rolloutPercentage: Number(row.rolloutPercentage),
  variants: row.variants,
  rules: row.rules,
  prerequisites: row.prerequisites,
  defaultValue: row.defaultValue ?? null,
  offValue: row.offValue ?? null,
  version: row.version,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

/** Flag writes run one at a time (across instances), so two writes cannot together form a prerequisite cycle. */
const FLAG_WRITE_LOCK = lockKey('feature-flags:write');
/** A served value is sent on every evaluation: keep each one small. */
const MAX_VALUE_BYTES = 16_384;

const NUMERIC_OPERATORS = new Set(['gt', 'gte', 'lt', 'lte']);
const SEMVER_OPERATORS = new Set(['semver_eq', 'semver_gt', 'semver_gte', 'semver_lt', 'semver_lte']);
const SINGLE_VALUE_OPERATORS = new Set(['equals', 'not_equals', ...NUMERIC_OPERATORS, ...SEMVER_OPERATORS]);

const hasAtMost3Decimals = (n: number): boolean => Math.abs(n * 1000 - Math.round(n * 1000)) < 1e-6;

/** The variant keys a rule or prerequisite may name: `on`/`off` for a boolean flag. */
const variantKeysOf = (def: Pick<FlagDefinition, 'variants'>): Set<string> =>
  def.variants.length === 0 ? new Set(['on', 'off']) : new Set(def.variants.map((v) => v.key));

/**
 * What JSON Schema cannot check, as 422 items pointing at the field: decimals, weights summing
 * to 100, operator arity and value types, variants and prerequisites that exist, cycles, and the
 * flags that depend on this one.
 */
export function flagProblems(def: FlagDefinition, others: ReadonlyMap<string, FlagDefinition>): ProblemErrorItem[] {
  const problems: ProblemErrorItem[] = [];
  const add = (pointer: string, message: string) => problems.push({ in: 'body', pointer, message });
  const boolean = def.variants.length === 0;

  if (!hasAtMost3Decimals(def.rolloutPercentage)) add('#/rolloutPercentage', 'has more than 3 decimals');

  const seenVariants = new Set<string>();
  let total = 0;
  def.variants.forEach((v, i) => {
    if (seenVariants.has(v.key)) add(`#/variants/${i}/key`, `variant '${v.key}' appears twice`);
    seenVariants.add(v.key);
    if (!hasAtMost3Decimals(v.weight)) add(`#/variants/${i}/weight`, 'has more than 3 decimals');
    total += Math.round(v.weight * 1000);
    if (JSON.stringify(v.value).length > MAX_VALUE_BYTES) add(`#/variants/${i}/value`, `is larger than ${MAX_VALUE_BYTES} bytes of JSON`);
  });
  if (def.variants.length > 0 && total !== 100_000) add('#/variants', `weights sum to ${total / 1000}, not 100`);

  for (const field of ['defaultValue', 'offValue'] as const) {
    const value = def[field];
    if (boolean && value !== false) add(`#/${field}`, 'a boolean flag (no variants) always serves false here');
    if (!boolean && JSON.stringify(value ?? null).length > MAX_VALUE_BYTES) add(`#/${field}`, `is larger than ${MAX_VALUE_BYTES} bytes of JSON`);
  }

  const ownVariants = variantKeysOf(def);
  def.rules.forEach((rule, i) => {
    const at = `#/rules/${i}`;
    if (SINGLE_VALUE_OPERATORS.has(rule.operator) && rule.values.length !== 1) add(`${at}/values`, `${rule.operator} takes exactly one value`);
    if (NUMERIC_OPERATORS.has(rule.operator) && rule.values.some((v) => typeof v !== 'number')) add(`${at}/values`, `${rule.operator} compares numbers`);
    if (SEMVER_OPERATORS.has(rule.operator) && rule.values.some((v) => typeof v !== 'string' || parseSemver(v) === undefined)) {
      add(`${at}/values`, `${rule.operator} needs a semantic version such as 1.4.0 (SemVer 2.0.0: no leading v, no spaces)`);
    }
    if (rule.rolloutPercentage !== undefined && !hasAtMost3Decimals(rule.rolloutPercentage)) add(`${at}/rolloutPercentage`, 'has more than 3 decimals');
    if (rule.variant !== undefined && !ownVariants.has(rule.variant)) add(`${at}/variant`, `no variant '${rule.variant}' (${[...ownVariants].join(', ')})`);
  });

  const seenPrerequisites = new Set<string>();
  def.prerequisites.forEach((p, i) => {
    const at = `#/prerequisites/${i}`;
    if (seenPrerequisites.has(p.flagKey)) add(`${at}/flagKey`, `'${p.flagKey}' appears twice`);
    seenPrerequisites.add(p.flagKey);
    if (p.flagKey === def.key) return add(`${at}/flagKey`, 'a flag cannot be its own prerequisite');
    const pre = others.get(p.flagKey);
    if (!pre) return add(`${at}/flagKey`, `no flag '${p.flagKey}'`);
    if (p.variant !== undefined && !variantKeysOf(pre).has(p.variant)) add(`${at}/variant`, `flag '${p.flagKey}' has no variant '${p.variant}'`);
  });
  if (problems.length === 0 && def.prerequisites.length > 0) {
    const all = new Map(others);
    all.set(def.key, def);
    if (flagsInCycles(all).has(def.key)) add('#/prerequisites', 'these prerequisites would form a cycle');
  }

  // Flags that need a variant of this one: it must still exist.
  for (const other of others.values()) {
    for (const p of other.prerequisites) {
      if (p.flagKey === def.key && p.variant !== undefined && !ownVariants.has(p.variant)) {
        add('#/variants', `flag '${other.key}' has a prerequisite on variant '${p.variant}' of this flag`);
      }
    }
  }
  return problems;
}

function refuse(problems: ProblemErrorItem[], key: string): never {
  throw new ProblemError('unprocessable', { detail: `Flag '${key}' is not valid: ${problems.map((p) => `${p.pointer} ${p.message}`).join('; ')}`, errors: problems });
}

const toDefinition = (row: FlagRow | Flag): FlagDefinition => ({
  key: row.key,
  enabled: row.enabled,
  rolloutPercentage: Number(row.rolloutPercentage),
  variants: row.variants,
  rules: row.rules,
  prerequisites: row.prerequisites,
  defaultValue: row.defaultValue ?? null,
  offValue: row.offValue ?? null,
});

/**
 * Feature flags, without HTTP: reads take the pool, writes take the caller's transaction so the
 * caller records the audit entry and the state notification in it. Writes take a transaction
 * lock first: the prerequisite checks read every flag, and two writes must not both pass them.
 */
export function createFlagService(deps: { db: Db }) {
  const { db } = deps;

  async function lockAndLoadOthers(tx: DbOrTx, exceptKey: string): Promise<Map<string, FlagDefinition>> {
    await tx.execute(sql`select pg_advisory_xact_lock(${FLAG_WRITE_LOCK.toString()}::bigint)`);
    const rows = await tx.select().from(featureFlags);
    return new Map(rows.filter((r) => r.key !== exceptKey).map((r) => [r.key, toDefinition(r)]));
  }

  return {
    /** Oldest first; keyset on `id`. */
    async list(filter: FlagFilter & { limit: number }): Promise<Page<Flag>> {
      const where: SQL[] = [];
      if (filter.type) where.push(eq(featureFlags.type, filter.type));
      if (filter.enabled !== undefined) where.push(eq(featureFlags.enabled, filter.enabled));
      if (filter.keyPrefix) where.push(like(featureFlags.key, likePrefix(filter.keyPrefix)));
      const afterId = decodeIdCursor(filter.cursor);
      if (afterId !== undefined) where.push(gt(featureFlags.id, afterId));
      const rows = await db
        .select()
        .from(featureFlags)
        .where(where.length ? and(...where) : undefined)
        .orderBy(asc(featureFlags.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toFlag);
    },

    async byKey(key: string): Promise<Flag | undefined> {
      const [row] = await db.select().from(featureFlags).where(eq(featureFlags.key, key)).limit(1);
      return row && toFlag(row);
    },

    /** Every flag as the engine needs it: what the state cache compiles. */
    async allDefinitions(): Promise<FlagDefinition[]> {
      const rows = await db.select().from(featureFlags).orderBy(asc(featureFlags.key));
      return rows.map(toDefinition);
    },

    async count(): Promise<{ total: number; enabled: number }> {
      const [row] = await db
        .select({ total: sql<number>`count(*)::int`, enabled: sql<number>`(count(*) filter (where ${featureFlags.enabled}))::int` })
        .from(featureFlags);
      return { total: row?.total ?? 0, enabled: row?.enabled ?? 0 };
    },

    async create(tx: DbOrTx, input: CreateFlag): Promise<Flag> {
      const others = await lockAndLoadOthers(tx, input.key);
      const boolean = (input.variants ?? []).length === 0;
      const def: FlagDefinition = {
        key: input.key,
        enabled: input.enabled ?? false,
        rolloutPercentage: input.rolloutPercentage ?? 0,
        variants: input.variants ?? [],
        rules: input.rules ?? [],
        prerequisites: input.prerequisites ?? [],
        defaultValue: input.defaultValue !== undefined ? input.defaultValue : boolean ? false : null,
        offValue: input.offValue !== undefined ? input.offValue : boolean ? false : null,
      };
      const problems = flagProblems(def, others);
      if (problems.length) refuse(problems, input.key);
      const [row] = await tx
        .insert(featureFlags)
        .values({ ...def, description: input.description ?? '', type: input.type ?? 'release' })
        .returning()
        .catch(conflictOnUnique(`A flag '${input.key}' already exists.`, { key: input.key }));
      return toFlag(row!);
    },

    /** Undefined when there is no such flag; 409 when `expectedVersion` is not the current one. */
    async update(tx: DbOrTx, key: string, patch: UpdateFlag): Promise<{ before: Flag; after: Flag } | undefined> {
      const others = await lockAndLoadOthers(tx, key);
      const [current] = await tx.select().from(featureFlags).where(eq(featureFlags.key, key)).for('update');
      if (!current) return undefined;
      if (patch.expectedVersion !== undefined && patch.expectedVersion !== current.version) {
        throw new ProblemError('conflict', {
          detail: `Flag '${key}' is at version ${current.version}, not ${patch.expectedVersion}; read it again and retry.`,
          extensions: { key, currentVersion: current.version },
        });
      }
      const { expectedVersion: _expected, ...changes } = patch;
      if (Object.keys(changes).length === 0) {
        throw new ProblemError('validation-failed', { detail: 'The request does not match the schema.', errors: [{ in: 'body', pointer: '#', message: 'names no field to change besides expectedVersion' }] });
      }
      const merged = { ...toDefinition(current), ...changes };
      // Becoming a boolean flag: its values are false unless the patch says otherwise (then checked).
      if (merged.variants.length === 0) {
        if (changes.defaultValue === undefined) merged.defaultValue = false;
        if (changes.offValue === undefined) merged.offValue = false;
      }
      const problems = flagProblems(merged, others);
      if (problems.length) refuse(problems, key);
      const [row] = await tx
        .update(featureFlags)
        .set({
          ...changes,
          defaultValue: merged.defaultValue,
          offValue: merged.offValue,
          version: sql`${featureFlags.version} + 1`,
          updatedAt: new Date(),
        })
        .where(eq(featureFlags.id, current.id))
        .returning();
      return { before: toFlag(current), after: toFlag(row!) };
    },

    /** The deleted flag, undefined when there was none; 409 while another flag needs it. */
    async remove(tx: DbOrTx, key: string): Promise<Flag | undefined> {
      const others = await lockAndLoadOthers(tx, key);
      const dependents = [...others.values()].filter((f) => f.prerequisites.some((p) => p.flagKey === key)).map((f) => f.key);
      const [row] = await tx.delete(featureFlags).where(eq(featureFlags.key, key)).returning();
      if (row && dependents.length) {
        throw new ProblemError('conflict', { detail: `Flag '${key}' is a prerequisite of ${dependents.map((d) => `'${d}'`).join(', ')}; change those first.`, extensions: { key, dependents } });
      }
      return row && toFlag(row);
    },
  };
}
export type FlagService = ReturnType<typeof createFlagService>;
