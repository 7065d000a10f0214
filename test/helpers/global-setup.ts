import postgres from 'postgres';
import { serverUrl, TEST_DB_PREFIX } from './database.js';

/**
 * Drops databases left behind by an interrupted earlier run: only those created more than an
 * hour ago (the name carries its creation time), so a concurrent run keeps its own.
 */
export default async function setup(): Promise<void> {
  const url = serverUrl();
  if (!url) return;
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
