import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { inject } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';
import { runMigrations } from '../../db/migrate.js';

/** The PostgreSQL server the suite runs against, or undefined for PGlite. */
export const serverUrl = (): string | undefined => process.env.TEST_DATABASE_URL || process.env.DATABASE_URL || undefined;

export const TEST_DB_PREFIX = 'vk_test_';

/** What the global setup prepared; nothing outside vitest (the benches use these helpers too). */
function prepared<K extends 'pgliteDumpFile' | 'templateDatabase'>(key: K): ReturnType<typeof inject<K>> | undefined {
  return process.env.VITEST ? inject(key) : undefined;
}

export interface TestDatabase {
  database: Database;
  /** Connection URL of this file's own database (PostgreSQL only). */
  url: string | undefined;
  /** Opens another pool on the same database, as a second instance would. */
  connectAgain(): Promise<Database>;
  drop(): Promise<void>;
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A migrated database for one test file (a fresh PostgreSQL database or an in-memory PGlite), copied from one migrated once per run. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const server = serverUrl();
  if (!server) {
    // A copy of the cluster the global setup migrated once (see global-setup.ts).
    const dumpFile = prepared('pgliteDumpFile');
    const database = await createDatabase(dumpFile ? { loadDataDir: new Blob([readFileSync(dumpFile)]) } : {});
    if (!dumpFile) await runMigrations(database);
    return {
      database,
      url: undefined,
      connectAgain: async () => database,
      drop: () => database.close(),
    };
  }
  const name = `${TEST_DB_PREFIX}${Math.floor(Date.now() / 1000)}_${process.pid}_${randomBytes(3).toString('hex')}`;
  // A copy of the database the global setup migrated once (see global-setup.ts).
  const template = prepared('templateDatabase');
  const admin = postgres(server, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(template ? `create database "${name}" template "${template}"` : `create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(server, name);
  const database = await createDatabase({ url, max: 5 });
  if (!template) await runMigrations(database, url);
  const extra: Database[] = [];
  return {
    database,
    url,
    async connectAgain() {
      const again = await createDatabase({ url, max: 5 });
      extra.push(again);
      return again;
    },
    async drop() {
      await Promise.all([database, ...extra].map((d) => d.close().catch(() => {})));
      const a = postgres(server, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}
