import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { sql } from 'drizzle-orm';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import { lockKey, pgErrorCode, queryRows, type Database, type Db } from './client.js';

/** `drizzle/` at the project root, found from this file whether it runs from source or from dist/. */
export function migrationsFolder(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'drizzle');
    if (existsSync(path.join(candidate, 'meta', '_journal.json'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('migrations folder drizzle/ not found');
}

export const MIGRATION_LOCK = lockKey('migrations');

/**
 * Applies drizzle/ to the database. drizzle's migrator takes no lock, so several instances
 * starting together would race; on PostgreSQL it runs on its own connection under
 * pg_advisory_lock, and the second instance finds nothing left to do.
 */
export async function runMigrations(database: Database, url?: string): Promise<void> {
  const folder = migrationsFolder();
  if (database.driver === 'pglite') {
    await migratePglite(database.db as PgliteDatabase, { migrationsFolder: folder });
    return;
  }
  if (!url) throw new Error('runMigrations on PostgreSQL needs the connection URL');
  const client = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK.toString()}::bigint)`;
    try {
      await migratePostgres(drizzlePostgres({ client }), { migrationsFolder: folder });
    } finally {
      await client`select pg_advisory_unlock(${MIGRATION_LOCK.toString()}::bigint)`;
    }
  } finally {
    await client.end({ timeout: 5 });
  }
}

/** Number of migrations in drizzle/ and how many the database has applied. */
export async function migrationStatus(db: Db): Promise<{ expected: number; applied: number }> {
  const expected = readMigrationFiles({ migrationsFolder: migrationsFolder() }).length;
  try {
    const [row] = await queryRows<{ n: number | string }>(
      db,
      sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
    );
    return { expected, applied: Number(row?.n ?? 0) };
  } catch (err) {
    if (pgErrorCode(err) === '42P01' || pgErrorCode(err) === '3F000') return { expected, applied: 0 };
    throw err;
  }
}
