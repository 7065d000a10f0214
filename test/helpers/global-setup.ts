import postgres from 'postgres';
import { serverUrl, TEST_DB_PREFIX } from './database.js';

/** Drops databases left behind by an interrupted earlier run. */
export default async function setup(): Promise<void> {
  const url = serverUrl();
  if (!url) return;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ datname: string }[]>`select datname from pg_database where datname like ${`${TEST_DB_PREFIX}%`}`;
    for (const { datname } of rows) await sql.unsafe(`drop database if exists "${datname}" with (force)`);
  } finally {
    await sql.end();
  }
}
