import { getTableColumns, sql, type SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import type { DbOrTx } from './client.js';

/** Columns whose value travels as JSON itself rather than as its driver string. */
const JSON_COLUMN_TYPES = new Set(['PgJson', 'PgJsonb']);

/**
 * PostgreSQL text and jsonb cannot hold U+0000: one such string would fail its whole batch on
 * every retry. It becomes U+FFFD, as an undecodable byte would. Done on the JSON text, where
 * JSON.stringify always writes U+0000 as the escape `\u0000` (a replacer function would make
 * it call back for every key and value: most of the serialisation's cost). An escape preceded
 * by an odd number of backslashes is a literal backslash followed by the text "u0000" and stays.
 */
const NUL_ESCAPE = /(?<!\\)((?:\\\\)*)\\u0000/g;
function jsonWithoutNul(value: unknown): string {
  const json = JSON.stringify(value);
  return json.includes('\\u0000') ? json.replace(NUL_ESCAPE, '$1\\ufffd') : json;
}

/**
 * Inserts many rows as one statement with one parameter: the rows as a JSON array, expanded by
 * `jsonb_to_recordset`. Drizzle's `insert().values(rows)` binds one parameter per cell (6,000
 * for 500 spans), and building and parsing those cost 50-110 µs of CPU per row here against
 * 4-25 µs this way (scripts measured on PGlite and PostgreSQL; see README "Performance").
 *
 * For the batch writers' append-only rows of scalars, timestamps and JSON. Columns are those
 * the first row defines; a column a row leaves out takes its database default. Rows that do not
 * all define the same columns go through Drizzle's own insert instead.
 */
export async function bulkInsert<T extends PgTable>(db: DbOrTx, table: T, rows: ReadonlyArray<T['$inferInsert']>): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.entries(getTableColumns(table) as Record<string, PgColumn>).filter(([key]) => (rows[0] as Record<string, unknown>)[key] !== undefined);
  const uniform = rows.every((row) => {
    const r = row as Record<string, unknown>;
    return Object.keys(r).filter((k) => r[k] !== undefined).length === columns.length && columns.every(([key]) => r[key] !== undefined);
  });
  if (!uniform) {
    await db.insert(table).values(rows as T['$inferInsert'][]);
    return;
  }

  const records = rows.map((row) => {
    const record: Record<string, unknown> = {};
    for (const [key, column] of columns) {
      const value = (row as Record<string, unknown>)[key];
      record[column.name] = value === null || JSON_COLUMN_TYPES.has(column.columnType) ? value : column.mapToDriverValue(value);
    }
    return record;
  });
  const names = sql.join(
    columns.map(([, c]) => sql.identifier(c.name)),
    sql`, `,
  );
  const shape: SQL = sql.join(
    columns.map(([, c]) => sql`${sql.identifier(c.name)} ${sql.raw(c.getSQLType())}`),
    sql`, `,
  );
  await db.execute(sql`insert into ${table} (${names}) select ${names} from jsonb_to_recordset(${jsonWithoutNul(records)}::jsonb) as r(${shape})`);
}
