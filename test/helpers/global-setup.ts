import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { migrationsFolder, runMigrations } from '../../db/migrate.js';
import { createDatabase } from '../../db/client.js';
import { serverUrl, TEST_DB_PREFIX, withDatabase } from './database.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** PGlite: a migrated cluster (`dumpDataDir` tarball) every test file starts from. */
    pgliteDumpFile: string;
    /** PostgreSQL: a migrated database every test file's database is created from (`template`). */
    templateDatabase: string;
  }
}

/**
 * Migrates once per run instead of once per test file. A fresh PGlite runs initdb (3-5 s, more on
 * a loaded machine); loading a dumped, migrated cluster takes under a second. On PostgreSQL each
 * file's database is a copy of a migrated template (`create database … template …`).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const url = serverUrl();
  if (!url) return pgliteDump(project);
  await dropLeftovers(url);
  return postgresTemplate(project, url);
}

const DUMP_PREFIX = 'vk-test-pglite-';

async function pgliteDump(project: TestProject): Promise<() => Promise<void>> {
  // An interrupted run leaves its dump behind: remove those over an hour old (not a concurrent run's).
  for (const name of readdirSync(tmpdir())) {
    const file = path.join(tmpdir(), name);
    if (!name.startsWith(DUMP_PREFIX) || !name.endsWith('.tar')) continue;
    const age = Date.now() - (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > 3_600_000) rmSync(file, { force: true });
  }
  const client = new PGlite();
  try {
    await migrate(drizzle({ client }), { migrationsFolder: migrationsFolder() });
    const dump = await client.dumpDataDir('none');
    const file = path.join(tmpdir(), `${DUMP_PREFIX}${process.pid}-${Date.now()}.tar`);
    writeFileSync(file, Buffer.from(await dump.arrayBuffer()));
    project.provide('pgliteDumpFile', file);
    return async () => rmSync(file, { force: true });
  } finally {
    await client.close();
  }
}

async function postgresTemplate(project: TestProject, url: string): Promise<() => Promise<void>> {
  // The creation time leads the name, so an interrupted run's template is dropped like its databases.
  const name = `${TEST_DB_PREFIX}${Math.floor(Date.now() / 1000)}_template_${process.pid}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const templateUrl = withDatabase(url, name);
  const database = await createDatabase({ url: templateUrl, max: 1 });
  try {
    await runMigrations(database, templateUrl);
  } finally {
    // A template must have no open connection while files copy it.
    await database.close();
  }
  project.provide('templateDatabase', name);
  return async () => {
    const a = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await a.unsafe(`drop database if exists "${name}" with (force)`);
    } finally {
      await a.end();
    }
  };
}

/**
 * Drops databases left behind by an interrupted earlier run: only those created more than an
 * hour ago (the name carries its creation time), so a concurrent run keeps its own.
 */
async function dropLeftovers(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ datname: string }[]>`select datname from pg_database where datname like ${`${TEST_DB_PREFIX}%`}`;
    const cutoff = Math.floor(Date.now() / 1000) - 3600;
    for (const { datname } of rows) {
      const created = Number(datname.slice(TEST_DB_PREFIX.length).split('_')[0]);
      if (Number.isFinite(created) && created < cutoff) await sql.unsafe(`drop database if exists "${datname}" with (force)`);
    }
  } finally {
    await sql.end();
  }
}
