import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';
import { migrationsFolder, runMigrations } from '../../db/migrate.js';
import { serverUrl, TEST_DB_PREFIX } from '../helpers/database.js';

// Pitfall: drizzle's migrator takes no lock, so instances starting together run a migration
// twice (duplicate tables, a failed start). runMigrations holds pg_advisory_lock around it.
// PGlite is one connection in one process, so this needs the real server.

const CALLERS = 4;
const server = serverUrl();

/** Every table the migration files create. */
function tablesInMigrations(): string[] {
  const folder = migrationsFolder();
  const names = new Set<string>();
  for (const file of readdirSync(folder).filter((f) => f.endsWith('.sql'))) {
    for (const m of readFileSync(path.join(folder, file), 'utf8').matchAll(/CREATE TABLE (?:IF NOT EXISTS )?"([^"]+)"/g)) names.add(m[1]!);
  }
  return [...names];
}

describe.skipIf(!server)('migrations from several instances at once (pitfall: drizzle migrator takes no lock)', () => {
  const name = `${TEST_DB_PREFIX}${process.pid}_mig_${randomBytes(4).toString('hex')}`;
  let url: string;
  let admin: ReturnType<typeof postgres>;
  const opened: Database[] = [];

  beforeAll(async () => {
    admin = postgres(server!, { max: 1, onnotice: () => {} });
    // A fresh, empty database: createTestDatabase would already have migrated it.
    await admin.unsafe(`create database "${name}"`);
    const u = new URL(server!);
    u.pathname = `/${name}`;
    url = u.toString();
  });

  afterAll(async () => {
    await Promise.all(opened.map((d) => d.close().catch(() => {})));
    await admin?.unsafe(`drop database if exists "${name}" with (force)`);
    await admin?.end();
  });

  it(`${CALLERS} concurrent runMigrations on an empty database all succeed and apply each migration once`, async () => {
    const instances = await Promise.all(Array.from({ length: CALLERS }, () => createDatabase({ url, max: 2 })));
    opened.push(...instances);

    const outcomes = await Promise.allSettled(instances.map((database) => runMigrations(database, url)));
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);

    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const expected = readMigrationFiles({ migrationsFolder: migrationsFolder() });
      const applied = await sql<{ hash: string }[]>`select hash from drizzle.__drizzle_migrations order by id`;
      expect(applied.map((r) => r.hash)).toEqual(expected.map((m) => m.hash));

      const tables = tablesInMigrations();
      expect(tables.length).toBeGreaterThan(0);
      const present = await sql<{ name: string }[]>`
        select table_name as name from information_schema.tables
        where table_schema = 'public' and table_name in ${sql(tables)}`;
      expect(present.map((r) => r.name).sort()).toEqual([...tables].sort());
    } finally {
      await sql.end();
    }

    // A later start finds nothing left to do.
    await runMigrations(instances[0]!, url);
  });
});
