import type net from 'node:net';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { createTestDatabase, type TestDatabase } from './database.js';
import { proxyInFrontOf, type FaultyProxy } from './faulty-proxy.js';

/**
 * postgres.js options, plus two it reads but does not declare in its types: `socket` (its socket
 * factory, as db/client.ts uses it) and `max_pipeline`.
 */
export type DriverOptions = postgres.Options<{}> & { socket?: (o: { host: string[]; port: number[] }) => net.Socket; max_pipeline?: number };

export interface ProxiedDriver {
  /** The file's fresh database; `database.url` reaches it directly, not through the proxy. */
  readonly database: TestDatabase;
  readonly proxy: FaultyProxy;
  /** The database's URL through the proxy. */
  readonly url: string;
  /** A postgres.js client on the proxy, ended after the test. */
  client(options?: DriverOptions): postgres.Sql;
}

/**
 * The set-up of a file of driver fault tests (call it inside `describe`): a fresh database behind a
 * FaultyProxy for the whole file (`prepare` runs once on its direct URL), and clients on the proxy.
 * After each test the proxy is restored and the clients `client()` opened are ended.
 */
export function useProxiedDriver(prepare?: (directUrl: string) => Promise<void>): ProxiedDriver {
  let database: TestDatabase | undefined;
  let proxy: FaultyProxy | undefined;
  let url = '';
  const clients: postgres.Sql[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    ({ proxy, url } = await proxyInFrontOf(database.url!));
    await prepare?.(database.url!);
  });
  afterEach(async () => {
    proxy?.restore();
    await Promise.all(clients.splice(0).map((c) => c.end({ timeout: 1 }).catch(() => {})));
  });
  afterAll(async () => {
    await proxy?.close();
    await database?.drop();
  });

  return {
    get database() {
      return database!;
    },
    get proxy() {
      return proxy!;
    },
    get url() {
      return url;
    },
    client(options = {}) {
      const sql = postgres(url, { onnotice: () => {}, ...options } as postgres.Options<{}>);
      clients.push(sql);
      return sql;
    },
  };
}
