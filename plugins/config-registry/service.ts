import { and, asc, desc, eq, gt, inArray, like, lt, max, ne, sql, type SQL } from 'drizzle-orm';
import { type Db, type DbOrTx, likePrefix } from '../../db/client.js';
import { decodeCursor, decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique, ProblemError } from '../../src/problem.js';
import {
  DEFAULT_ENVIRONMENT,
  ENVIRONMENT_PATTERN,
  KEY_PATTERN,
  type ConfigEntry,
  type ConfigHistoryItem,
  type ConfigListFilter,
  type ConfigType,
  type EffectiveFilter,
  type EffectivePage,
  type HistoryFilter,
  type HistoryOperation,
  type CreateEntry,
  type PutEntry,
} from './schemas.js';
import { findSecrets, type SecretFinding } from './secret-detector.js';
import { systemConfig, systemConfigHistory } from './table.js';
import { inferType, valueProblems } from './values.js';

type EntryRow = typeof systemConfig.$inferSelect;
type HistoryRow = typeof systemConfigHistory.$inferSelect;

const toEntry = (row: EntryRow): ConfigEntry => ({
  key: row.key,
  environment: row.environment,
  value: row.value,
  type: row.type as ConfigType,
  description: row.description,
  version: row.version,
  updatedBy: row.updatedBy,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

const toHistoryItem = (row: HistoryRow): ConfigHistoryItem => ({
  id: row.id,
  key: row.key,
  environment: row.environment,
  version: row.version,
  operation: row.operation as HistoryOperation,
  ...(row.operation === 'delete' ? {} : { value: row.value }),
  type: row.type as ConfigType | null,
  description: row.description,
  restoredVersion: row.restoredVersion,
  actor: row.actor,
  reason: row.reason,
  correlationId: row.correlationId,
  createdAt: row.createdAt.toISOString(),
});

/** Who made a change and why: kept on the entry (`updatedBy`) and in its history row. */
export interface ChangeMeta {
  actor: string;
  reason?: string | null;
  correlationId?: string | null;
}

export interface EntryChange {
  before: ConfigEntry | null;
  after: ConfigEntry;
}

/** Every (key, environment, value): what the in-memory accessor holds. */
export interface ConfigRowValue {
  key: string;
  environment: string;
  value: unknown;
}


const where = (key: string, environment: string) => `'${key}' in environment '${environment}'`;

export const entryNotFound = (key: string, environment: string): ProblemError => new ProblemError('resource-not-found', { detail: `No configuration entry ${where(key, environment)}.`, extensions: { key, environment } });

const concurrentChange = (key: string, environment: string) =>
  conflictOnUnique(`${where(key, environment)} was changed concurrently; read it again and retry.`, { key, environment });

function versionMismatch(key: string, environment: string, expected: number, current: EntryRow | undefined): ProblemError {
  const now = current ? `is at version ${current.version}` : 'does not exist';
  return new ProblemError('conflict', {
    detail: `Expected ${where(key, environment)} at version ${expected}, but it ${now}; read it again and retry.`,
    extensions: { key, environment, expectedVersion: expected, currentVersion: current?.version ?? null },
  });
}

const KEY_RE = new RegExp(KEY_PATTERN);
const ENVIRONMENT_RE = new RegExp(ENVIRONMENT_PATTERN);
const badCursor = () => new ProblemError('invalid-cursor', { detail: 'The cursor is not valid for this list.' });

/** The key (and environment) a cursor carries; anything that cannot be one was altered. */
function cursorKey(cursor: string | undefined): string | undefined {
  const after = decodeCursor(cursor, 1);
  if (!after) return undefined;
  const [key] = after;
  if (typeof key !== 'string' || !KEY_RE.test(key)) throw badCursor();
  return key;
}
function cursorKeyEnvironment(cursor: string | undefined): [string, string] | undefined {
  const after = decodeCursor(cursor, 2);
  if (!after) return undefined;
  const [key, environment] = after;
  if (typeof key !== 'string' || !KEY_RE.test(key) || typeof environment !== 'string' || !ENVIRONMENT_RE.test(environment)) throw badCursor();
  return [key, environment];
}


/** What a finding is about: the key, the value, or a field inside the value. */
function subject(key: string, f: SecretFinding): string {
  if (f.pointer === undefined) return `the key '${key}'`;
  return f.pointer === '' ? 'the value' : `the value's field ${f.pointer}`;
}

/** Explains a refused secret without repeating it: the findings say where and which rule. */
export function secretRefusal(key: string, findings: SecretFinding[], keyIn: 'params' | 'body' = 'params'): ProblemError {
  const [first] = findings;
  const why = first ? `${subject(key, first)} ${first.message}` : 'it matches a secret rule';
  return new ProblemError('unprocessable', {
    detail:
      `Refused: ${why}. The config registry holds no secrets (anyone with config:read reads it, and it is kept in the history, ` +
      'the audit trail and exports): keep the secret in an environment variable or a secret manager and store only its name here, ' +
      `e.g. 'smtp.password_env': "SMTP_PASSWORD".`,
    errors: findings.slice(0, 20).map((f) =>
      f.pointer === undefined ? { in: keyIn, pointer: '#/key', message: f.message } : { in: 'body', pointer: `#/value${f.pointer}`, message: f.message },
    ),
    extensions: { rules: [...new Set(findings.map((f) => f.rule))] },
  });
}

/**
 * The config registry without HTTP. Reads take the pool; writes take the caller's transaction so
 * the route records the audit entry and the state notification in that same transaction.
 */
export function createConfigService(deps: { db: Db; onSecretRefused?: (rules: string[]) => void }) {
  const { db } = deps;

  /** Type, size and secret checks shared by POST, PUT and rollback. Throws the problem to answer. */
  function checkEntry(key: string, type: ConfigType, value: unknown, keyIn: 'params' | 'body' = 'params'): void {
    const problems = valueProblems(type, value);
    if (problems.length) throw new ProblemError('validation-failed', { detail: `The value does not fit type '${type}'.`, errors: problems });
    const findings = findSecrets(key, value);
    if (findings.length) {
      deps.onSecretRefused?.([...new Set(findings.map((f) => f.rule))]);
      throw secretRefusal(key, findings, keyIn);
    }
  }

  /**
   * One key has one type in every environment, so `app.config.get<number>(key)` holds whichever
   * environment wins. A different type elsewhere is a conflict with the current state.
   */
  async function checkTypeAgreement(tx: DbOrTx, key: string, environment: string, type: ConfigType): Promise<void> {
    const [other] = await tx
      .select({ environment: systemConfig.environment, type: systemConfig.type })
      .from(systemConfig)
      .where(and(eq(systemConfig.key, key), ne(systemConfig.environment, environment), ne(systemConfig.type, type)))
      .orderBy(asc(systemConfig.environment))
      .limit(1);
    if (other) {
      throw new ProblemError('conflict', {
        detail: `'${key}' is of type '${other.type}' in environment '${other.environment}'; a key has one type in every environment. Change or delete the other environments' entries first.`,
        extensions: { key, environment: other.environment, type: other.type },
      });
    }
  }

  async function lockEntry(tx: DbOrTx, key: string, environment: string): Promise<EntryRow | undefined> {
    const [row] = await tx
      .select()
      .from(systemConfig)
      .where(and(eq(systemConfig.key, key), eq(systemConfig.environment, environment)))
      .for('update');
    return row;
  }

  /** Versions never repeat for a (key, environment), even after a delete: continue from the history. */
  async function nextVersion(tx: DbOrTx, key: string, environment: string, current: EntryRow | undefined): Promise<number> {
    if (current) return current.version + 1;
    const [last] = await tx
      .select({ version: max(systemConfigHistory.version) })
      .from(systemConfigHistory)
      .where(and(eq(systemConfigHistory.key, key), eq(systemConfigHistory.environment, environment)));
    return (last?.version ?? 0) + 1;
  }

  async function write(
    tx: DbOrTx,
    target: { key: string; environment: string; value: unknown; type: ConfigType; description: string },
    current: EntryRow | undefined,
    operation: 'create' | 'update' | 'rollback',
    meta: ChangeMeta & { restoredVersion?: number },
  ): Promise<EntryChange> {
    const { key, environment } = target;
    await checkTypeAgreement(tx, key, environment, target.type);
    const version = await nextVersion(tx, key, environment, current);
    const fields = { value: target.value, type: target.type, description: target.description, version, updatedBy: meta.actor };
    const [row] = current
      ? await tx
          .update(systemConfig)
          .set({ ...fields, updatedAt: new Date() })
          .where(eq(systemConfig.id, current.id))
          .returning()
      : await tx
          .insert(systemConfig)
          .values({ key, environment, ...fields })
          .returning()
          .catch(concurrentChange(key, environment));
    await tx
      .insert(systemConfigHistory)
      .values({
        key,
        environment,
        version,
        operation,
        value: target.value,
        type: target.type,
        description: target.description,
        restoredVersion: meta.restoredVersion ?? null,
        actor: meta.actor,
        reason: meta.reason ?? null,
        correlationId: meta.correlationId ?? null,
      })
      .catch(concurrentChange(key, environment));
    return { before: current ? toEntry(current) : null, after: toEntry(row!) };
  }

  function checkExpected(key: string, environment: string, expected: number | undefined, current: EntryRow | undefined): void {
    if (expected === undefined) return;
    if ((current?.version ?? 0) !== expected) throw versionMismatch(key, environment, expected, current);
  }

  return {
    /** Ordered by key, then environment; keyset on both. */
    async list(filter: ConfigListFilter & { limit: number }): Promise<Page<ConfigEntry>> {
      const conditions: SQL[] = [];
      if (filter.environment) conditions.push(eq(systemConfig.environment, filter.environment));
      if (filter.prefix) conditions.push(like(systemConfig.key, likePrefix(filter.prefix)));
      const after = cursorKeyEnvironment(filter.cursor);
      if (after) conditions.push(sql`(${systemConfig.key}, ${systemConfig.environment}) > (${after[0]}, ${after[1]})`);
      const rows = await db
        .select()
        .from(systemConfig)
        .where(conditions.length ? and(...conditions) : undefined)
        .orderBy(asc(systemConfig.key), asc(systemConfig.environment))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.key, r.environment], toEntry);
    },

    async get(key: string, environment: string): Promise<ConfigEntry | undefined> {
      const [row] = await db
        .select()
        .from(systemConfig)
        .where(and(eq(systemConfig.key, key), eq(systemConfig.environment, environment)))
        .limit(1);
      return row && toEntry(row);
    },

    /**
     * Creates or updates the entry. `type` and `description` default to the current entry's
     * (a type change is explicit), else to the value's own type and ''.
     */
    async put(tx: DbOrTx, key: string, environment: string, input: PutEntry, meta: ChangeMeta): Promise<EntryChange> {
      const current = await lockEntry(tx, key, environment);
      checkExpected(key, environment, input.expectedVersion, current);
      const type = input.type ?? (current?.type as ConfigType | undefined) ?? inferType(input.value);
      checkEntry(key, type, input.value);
      const description = input.description ?? current?.description ?? '';
      return write(tx, { key, environment, value: input.value, type, description }, current, current ? 'update' : 'create', meta);
    },

    /** Creates the entry; 409 when the key already has one in this environment (PUT changes it). */
    async create(tx: DbOrTx, input: CreateEntry, meta: ChangeMeta): Promise<ConfigEntry> {
      const { key, environment = DEFAULT_ENVIRONMENT } = input;
      const type = input.type ?? inferType(input.value);
      checkEntry(key, type, input.value, 'body');
      const current = await lockEntry(tx, key, environment);
      if (current) {
        throw new ProblemError('conflict', {
          detail: `An entry ${where(key, environment)} already exists (version ${current.version}); change it with PUT /system/config/${key}.`,
          extensions: { key, environment, currentVersion: current.version },
        });
      }
      return (await write(tx, { key, environment, value: input.value, type, description: input.description ?? '' }, undefined, 'create', meta)).after;
    },

    /** The deleted entry, or undefined when there was none. The history keeps a `delete` version. */
    async remove(tx: DbOrTx, key: string, environment: string, expectedVersion: number | undefined, meta: ChangeMeta): Promise<ConfigEntry | undefined> {
      const current = await lockEntry(tx, key, environment);
      if (!current) return undefined;
      checkExpected(key, environment, expectedVersion, current);
      await tx.delete(systemConfig).where(eq(systemConfig.id, current.id));
      await tx
        .insert(systemConfigHistory)
        .values({
          key,
          environment,
          version: current.version + 1,
          operation: 'delete',
          value: null,
          type: null,
          description: null,
          actor: meta.actor,
          reason: meta.reason ?? null,
          correlationId: meta.correlationId ?? null,
        })
        .catch(concurrentChange(key, environment));
      return toEntry(current);
    },

    /**
     * Writes a new version equal to `version` (value, type, description). Works on a deleted
     * entry too: rolling back to a version before the delete brings the entry back.
     */
    async rollback(
      tx: DbOrTx,
      key: string,
      environment: string,
      input: { version: number; expectedVersion?: number },
      meta: ChangeMeta,
    ): Promise<EntryChange> {
      const current = await lockEntry(tx, key, environment);
      checkExpected(key, environment, input.expectedVersion, current);
      const [target] = await tx
        .select()
        .from(systemConfigHistory)
        .where(and(eq(systemConfigHistory.key, key), eq(systemConfigHistory.environment, environment), eq(systemConfigHistory.version, input.version)))
        .limit(1);
      if (!target) {
        throw new ProblemError('resource-not-found', { detail: `No version ${input.version} of ${where(key, environment)}.`, extensions: { key, environment, version: input.version } });
      }
      if (target.operation === 'delete' || target.type === null) {
        throw new ProblemError('unprocessable', {
          detail: `Version ${input.version} of ${where(key, environment)} records its deletion; roll back to a version with a value, or DELETE the entry.`,
          extensions: { key, environment, version: input.version },
        });
      }
      const type = target.type as ConfigType;
      // The rules may have tightened since that version was written: it must pass today's.
      checkEntry(key, type, target.value);
      return write(tx, { key, environment, value: target.value, type, description: target.description ?? '' }, current, 'rollback', {
        ...meta,
        restoredVersion: input.version,
      });
    },

    /** Newest first; every environment unless one is named. */
    async history(key: string, filter: HistoryFilter & { limit: number }): Promise<Page<ConfigHistoryItem>> {
      const conditions: SQL[] = [eq(systemConfigHistory.key, key)];
      if (filter.environment) conditions.push(eq(systemConfigHistory.environment, filter.environment));
      const beforeId = decodeIdCursor(filter.cursor);
      if (beforeId !== undefined) conditions.push(lt(systemConfigHistory.id, beforeId));
      const rows = await db
        .select()
        .from(systemConfigHistory)
        .where(and(...conditions))
        .orderBy(desc(systemConfigHistory.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toHistoryItem);
    },

    /** Default entries overridden by the environment's, by key; keyset on the key. */
    async effective(filter: EffectiveFilter & { limit: number }): Promise<EffectivePage> {
      const environment = filter.environment ?? DEFAULT_ENVIRONMENT;
      const conditions: SQL[] = [inArray(systemConfig.environment, [DEFAULT_ENVIRONMENT, environment])];
      if (filter.prefix) conditions.push(like(systemConfig.key, likePrefix(filter.prefix)));
      const afterKey = cursorKey(filter.cursor);
      if (afterKey !== undefined) conditions.push(gt(systemConfig.key, afterKey));
      // DISTINCT ON keeps the first row per key: the override sorts before the default.
      const rows = await db
        .selectDistinctOn([systemConfig.key])
        .from(systemConfig)
        .where(and(...conditions))
        .orderBy(asc(systemConfig.key), sql`${systemConfig.environment} = ${DEFAULT_ENVIRONMENT}`)
        .limit(filter.limit + 1);
      const page = toPage(rows, filter.limit, (r) => [r.key], (r) => ({
        key: r.key,
        value: r.value,
        type: r.type as ConfigType,
        description: r.description,
        source: r.environment,
        version: r.version,
        updatedAt: r.updatedAt.toISOString(),
      }));
      return { environment, ...page };
    },

    /** Every entry's value in every environment: the accessor's whole state. */
    async snapshot(): Promise<ConfigRowValue[]> {
      return db.select({ key: systemConfig.key, environment: systemConfig.environment, value: systemConfig.value }).from(systemConfig);
    },
  };
}
export type ConfigService = ReturnType<typeof createConfigService>;
