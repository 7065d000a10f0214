import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, type BuildAppOptions } from '../../src/app.js';
import type { Scope } from '../../src/access.js';
import { envWith, type Env } from '../../src/env.js';
import type { Database } from '../../db/client.js';
import { generateApiKey } from '../../plugins/api-keys/key-format.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestApp {
  app: FastifyInstance;
  db: TestDatabase;
  /** The admin key every instance of this test app is bootstrapped with (`ADMIN_API_KEY`). */
  adminKey: string;
  /** `app.inject` with the admin key (an explicit `authorization`/`x-api-key` header wins). */
  inject(opts: InjectOptions, on?: FastifyInstance): Promise<LightMyRequestResponse>;
  /** Creates an API client holding `scopes` and one key for it, through the API; returns the key. */
  keyWith(scopes: Scope[], client?: Record<string, unknown>): Promise<{ token: string; keyId: string; clientId: number }>;
  /** Builds another app instance on the same database (a second instance behind the load balancer). */
  another(overrides?: Partial<Env>, options?: Omit<BuildAppOptions, 'env' | 'database'>): Promise<FastifyInstance>;
  close(): Promise<void>;
}

export function testEnv(db: TestDatabase, overrides: Partial<Env> = {}): Env {
  // Event-loop load shedding is off: building another app in the same process can block the loop
  // for over a second on a busy machine, which would shed an unrelated request with 503.
  // Escalation of repeated 401s/429s is off: every test request comes from 127.0.0.1, and tests
  // of authentication and rate limits would block it for the tests after them (the blocklist's
  // own tests turn it on).
  return envWith({
    LOG_LEVEL: 'silent',
    RUN_JOBS: false,
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
    BLOCKLIST_AUTH_FAILURE_THRESHOLD: 0,
    BLOCKLIST_RATE_LIMIT_THRESHOLD: 0,
    DATABASE_URL: db.url,
    ...overrides,
  });
}

export const authHeader = (token: string) => ({ authorization: `Bearer ${token}` });

let clientSeq = 0;

/** One kernel per test file on its own database; `close()` tears both down. */
export async function createTestApp(overrides: Partial<Env> = {}, options: Omit<BuildAppOptions, 'env' | 'database'> = {}): Promise<TestApp> {
  const db = await createTestDatabase();
  const adminKey = overrides.ADMIN_API_KEY ?? generateApiKey().token;
  const apps: FastifyInstance[] = [];
  const build = async (database: Database, o: Partial<Env>, opts: Omit<BuildAppOptions, 'env' | 'database'>) => {
    const app = await buildApp({ logger: false, migrate: false, ...opts, env: testEnv(db, { ADMIN_API_KEY: adminKey, ...o }), database });
    apps.push(app);
    return app;
  };
  const app = await build(db.database, overrides, options);
  const inject: TestApp['inject'] = (opts, on = app) => {
    const given = (opts.headers ?? {}) as Record<string, unknown>;
    const explicit = 'authorization' in given || 'x-api-key' in given;
    return on.inject({ ...opts, headers: explicit ? given : { ...authHeader(adminKey), ...given } } as InjectOptions);
  };
  return {
    app,
    db,
    adminKey,
    inject,
    async keyWith(scopes, client = {}) {
      const c = await inject({ method: 'POST', url: '/system/api-clients', payload: { name: `test-client-${++clientSeq}-${Date.now()}`, owner: 'tests', scopes, ...client } });
      if (c.statusCode !== 201) throw new Error(`creating a client failed: ${c.statusCode} ${c.body}`);
      const clientId = c.json<{ id: number }>().id;
      const k = await inject({ method: 'POST', url: `/system/api-clients/${clientId}/keys`, payload: { name: 'test key', scopes } });
      if (k.statusCode !== 201) throw new Error(`creating a key failed: ${k.statusCode} ${k.body}`);
      const key = k.json<{ token: string; keyId: string }>();
      return { token: key.token, keyId: key.keyId, clientId };
    },
    another: async (o = overrides, opts = options) => build(await db.connectAgain(), o, opts),
    async close() {
      for (const a of apps.reverse()) await a.close();
      await db.drop();
    },
  };
}
