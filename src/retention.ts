import type { SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import { getTableConfig } from 'drizzle-orm/pg-core';
import type { Db } from '../db/client.js';
import type { Scope } from './access.js';

/**
 * The purgeable categories: each pack (and the kernel, for the audit trail and the job queue)
 * names its tables with a time column here, so the retention pack can purge them without
 * reaching into other packs' tables or knowing which packs exist. A kernel registry rather than
 * a decoration of the retention pack: it is there whatever the pack order, and a category
 * registered while the retention pack is disabled just waits.
 */
export interface RetentionCategory {
  /** What policies and URLs call it: `system_logs`, `admin_operations`, ... */
  name: string;
  description: string;
  table: PgTable;
  /** A unique integer key: each batch deletes up to N rows chosen by it. */
  idColumn: PgColumn;
  /** `timestamptz`: rows older than the policy's cutoff go. */
  timeColumn: PgColumn;
  /** Only rows also matching this may go (e.g. finished outbox rows, never pending ones). */
  where?: SQL;
  /**
   * The scope that reads these rows through their own routes. An export of the dataset (creating
   * it and downloading its file) needs it too, so `exports:*` never reads more than the key could
   * read directly. Undeclared: `admin` only.
   */
  readScope?: Scope;
  /** The retention a new policy gets when none is given. */
  defaultRetainDays: number;
  /** The shortest retention a policy may set; shorter is refused (the audit trail's floor). */
  minRetainDays?: number;
  /**
   * Replaces the generic batch delete when deleting has to keep something intact (the audit
   * trail's hash chain). Deletes at most `limit` rows older than `cutoff`; returns how many.
   */
  purgeBatch?: (db: Db, cutoff: Date, limit: number) => Promise<number>;
  /** With `purgeBatch`: how many rows a purge at `cutoff` would delete (dry runs). */
  countEligible?: (db: Db, cutoff: Date) => Promise<number>;
}

export interface RetentionRegistry {
  /** Registers a category; throws on a duplicate name or columns of another table. */
  category(def: RetentionCategory): void;
  get(name: string): RetentionCategory | undefined;
  list(): readonly RetentionCategory[];
}

const NAME = /^[a-z][a-z0-9_]{0,62}$/;

export function createRetentionRegistry(): RetentionRegistry {
  const categories = new Map<string, RetentionCategory>();
  return {
    category(def) {
      if (!NAME.test(def.name)) throw new Error(`retention category '${def.name}' must be snake_case (like a table name)`);
      if (categories.has(def.name)) throw new Error(`retention category '${def.name}' is registered twice`);
      const tableName = getTableConfig(def.table).name;
      for (const column of [def.idColumn, def.timeColumn]) {
        if (column.table !== def.table) throw new Error(`retention category '${def.name}': column '${column.name}' is not a column of '${tableName}'`);
      }
      if ((def.purgeBatch === undefined) !== (def.countEligible === undefined)) throw new Error(`retention category '${def.name}': purgeBatch and countEligible go together`);
      if (!Number.isInteger(def.defaultRetainDays) || def.defaultRetainDays < (def.minRetainDays ?? 1)) {
        throw new Error(`retention category '${def.name}': defaultRetainDays must be an integer of at least ${def.minRetainDays ?? 1}`);
      }
      categories.set(def.name, def);
    },
    get: (name) => categories.get(name),
    list: () => [...categories.values()].sort((a, b) => a.name.localeCompare(b.name)),
  };
}
