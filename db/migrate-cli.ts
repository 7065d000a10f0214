// `npm run db:migrate`: applies drizzle/ without starting the server (a deploy step).
import { loadEnv } from '../src/env.js';
import { createDatabase } from './client.js';
import { runMigrations } from './migrate.js';

const env = loadEnv();
const database = await createDatabase({ url: env.DATABASE_URL, dataDir: env.DATA_DIR, max: 1 });
try {
  await runMigrations(database, env.DATABASE_URL);
  console.log(`migrations applied (${database.driver})`);
} finally {
  await database.close();
}
