import { and, asc, eq, gt, like, type SQL } from 'drizzle-orm';
import { type Db, type DbOrTx, likePrefix } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique } from '../../src/problem.js';
import type { CreateTemplateItem, TemplateItem, TemplateItemFilter, UpdateTemplateItem } from './schemas.js';
import { templateItems } from './table.js';

type TemplateItemRow = typeof templateItems.$inferSelect;

const toTemplateItem = (row: TemplateItemRow): TemplateItem => ({
  id: row.id,
  name: row.name,
  description: row.description,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});


/** A duplicate name is the client's conflict (409), not a server error. */
const rethrowDuplicateName = (name: string) => conflictOnUnique(`A template item named '${name}' already exists.`, { name });


/**
 * Template items, without HTTP: reads take the pool, writes take the caller's transaction (`tx`,
 * given by `app.writeThrough`) so the audit entry and the state notification share it.
 */
export function createTemplateItemService(deps: { db: Db }) {
  const { db } = deps;
  return {
    /** Oldest first; keyset on `id`, never OFFSET. */
    async list(filter: TemplateItemFilter & { limit: number }): Promise<Page<TemplateItem>> {
      const where: SQL[] = [];
      if (filter.namePrefix) where.push(like(templateItems.name, likePrefix(filter.namePrefix)));
      const afterId = decodeIdCursor(filter.cursor);
      if (afterId !== undefined) where.push(gt(templateItems.id, afterId));
      const rows = await db
        .select()
        .from(templateItems)
        .where(where.length ? and(...where) : undefined)
        .orderBy(asc(templateItems.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toTemplateItem);
    },

    async byId(id: number): Promise<TemplateItem | undefined> {
      const [row] = await db.select().from(templateItems).where(eq(templateItems.id, id)).limit(1);
      return row && toTemplateItem(row);
    },

    /** Every name: what the state cache holds in memory. */
    async allNames(): Promise<ReadonlySet<string>> {
      const rows = await db.select({ name: templateItems.name }).from(templateItems);
      return new Set(rows.map((r) => r.name));
    },

    async create(tx: DbOrTx, input: CreateTemplateItem): Promise<TemplateItem> {
      const [row] = await tx
        .insert(templateItems)
        .values({ name: input.name, description: input.description ?? '' })
        .returning()
        .catch(rethrowDuplicateName(input.name));
      return toTemplateItem(row!);
    },

    /** Undefined when there is no such item. */
    async update(tx: DbOrTx, id: number, patch: UpdateTemplateItem): Promise<{ before: TemplateItem; after: TemplateItem } | undefined> {
      const [current] = await tx.select().from(templateItems).where(eq(templateItems.id, id)).for('update');
      if (!current) return undefined;
      const [row] = await tx
        .update(templateItems)
        .set({ ...patch, updatedAt: new Date() })
        .where(eq(templateItems.id, id))
        .returning()
        .catch(rethrowDuplicateName(patch.name ?? current.name));
      return { before: toTemplateItem(current), after: toTemplateItem(row!) };
    },

    /** The deleted item, or undefined when there was none. */
    async remove(tx: DbOrTx, id: number): Promise<TemplateItem | undefined> {
      const [row] = await tx.delete(templateItems).where(eq(templateItems.id, id)).returning();
      return row && toTemplateItem(row);
    },
  };
}
export type TemplateItemService = ReturnType<typeof createTemplateItemService>;
