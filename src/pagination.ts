import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ProblemError } from './problem.js';

/**
 * Keyset pagination, the one helper every list uses. The cursor is opaque to clients
 * (base64url of the last row's sort key) and page N costs what page 1 costs: the next page is
 * `WHERE (sort, id) < (cursor)` on an index, never OFFSET.
 */
export const PAGE_DEFAULT = 50;
export const PAGE_MAX = 500;

export const PageQuerySchema = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE_MAX, default: PAGE_DEFAULT })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, pattern: '^[A-Za-z0-9_-]+$' })),
});
export type PageQuery = Static<typeof PageQuerySchema>;

export const PageOf = <T extends TSchema>(item: T, description?: string) =>
  Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) }, { description });

export type Page<T> = { items: T[]; nextCursor: string | null };

/** A cursor carries the sort key of the last row of the previous page: `[id]` or `[timestamp, id]`. */
export type CursorKey = Array<string | number>;

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor(cursor: string | undefined, arity: number): CursorKey | undefined {
  if (cursor === undefined) return undefined;
  try {
    const key: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(key) && key.length === arity && key.every((v) => typeof v === 'string' || typeof v === 'number')) {
      return key as CursorKey;
    }
  } catch {
    // falls through to the problem below
  }
  throw new ProblemError('invalid-cursor', { detail: 'The cursor is not valid for this list.' });
}

/**
 * The id carried by an `[id]` cursor (lists ordered by id alone). A cursor that decodes but
 * holds anything other than a positive integer was altered: 400, never a database error.
 */
export function decodeIdCursor(cursor: string | undefined): number | undefined {
  const key = decodeCursor(cursor, 1);
  if (!key) return undefined;
  const id = key[0];
  if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return id;
  throw new ProblemError('invalid-cursor', { detail: 'The cursor is not valid for this list.' });
}

/**
 * Query `limit + 1` rows, then pass them here with the row-to-item mapper: the extra row only
 * says whether a next page exists.
 */
export function toPage<Row, Item>(rows: Row[], limit: number, keyOf: (row: Row) => CursorKey, map: (row: Row) => Item): Page<Item> {
  const more = rows.length > limit;
  const pageRows = more ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return {
    items: pageRows.map(map),
    nextCursor: more && last !== undefined ? encodeCursor(keyOf(last)) : null,
  };
}

export const pageLimit = (q: PageQuery): number => q.limit ?? PAGE_DEFAULT;

/**
 * Every item of a keyset-paginated list, page by page (`PAGE_MAX` rows a query): for bounded
 * control-plane sets such as snapshots, never for data that can grow without bound.
 */
export async function readAllPages<T>(list: (q: { limit: number; cursor?: string }) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await list({ limit: PAGE_MAX, cursor });
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return items;
}
