import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildAppOptions } from '../../src/app.js';
import { envWith, type Env } from '../../src/env.js';
import type { Database } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestApp {
  app: FastifyInstance;
  db: TestDatabase;
  /** Builds another app instance on the same database (a second instance behind the load balancer). */
  another(overrides?: Partial<Env>, options?: Omit<BuildAppOptions, 'env' | 'database'>): Promise<FastifyInstance>;
  close(): Promise<void>;
}

export function testEnv(db: TestDatabase, overrides: Partial<Env> = {}): Env {
  // Event-loop load shedding is off: building another app in the same process can block the loop
  // for over a second on a busy machine, which would shed an unrelated request with 503.
  return envWith({ LOG_LEVEL: 'silent', RUN_JOBS: false, PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0, DATABASE_URL: db.url, ...overrides });
}

/** One kernel per test file on its own database; `close()` tears both down. */
export async function createTestApp(overrides: Partial<Env> = {}, options: Omit<BuildAppOptions, 'env' | 'database'> = {}): Promise<TestApp> {
  const db = await createTestDatabase();
  const apps: FastifyInstance[] = [];
  const build = async (database: Database, o: Partial<Env>, opts: Omit<BuildAppOptions, 'env' | 'database'>) => {
    const app = await buildApp({ logger: false, migrate: false, ...opts, env: testEnv(db, o), database });
    apps.push(app);
    return app;
  };
  const app = await build(db.database, overrides, options);
  return {
    app,
    db,
    another: async (o = overrides, opts = options) => build(await db.connectAgain(), o, opts),
    async close() {
      for (const a of apps.reverse()) await a.close();
      await db.drop();
    },
  };
}
