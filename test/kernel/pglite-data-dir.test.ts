import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase, queryRows } from '../../db/client.js';

// The embedded default's data directory: a first open creates the cluster (in a child process,
// db/client.ts) and the kernel then opens it with a smaller buffer pool; a second open finds
// the same cluster with what the first wrote.
describe('PGlite with a data directory', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('creates the cluster on first open, runs with shared_buffers 32MB and keeps its data for the next open', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'vk-pglite-dir-'));
    dirs.push(dataDir);
    expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(false);

    const first = await createDatabase({ dataDir });
    try {
      expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
      const [settings] = await queryRows<{ buffers: string; tz: string }>(first.db, sql`select current_setting('shared_buffers') as buffers, current_setting('TimeZone') as tz`);
      // initdb's own settings (postgresql.conf) are kept: only the buffer pool is set at start.
      expect(settings).toEqual({ buffers: '32MB', tz: 'UTC' });
      await first.db.execute(sql`create table kept (v text)`);
      await first.db.execute(sql`insert into kept values ('written by the first open')`);
    } finally {
      await first.close();
    }

    const second = await createDatabase({ dataDir });
    try {
      expect(await queryRows<{ v: string }>(second.db, sql`select v from kept`)).toEqual([{ v: 'written by the first open' }]);
      const [settings] = await queryRows<{ buffers: string }>(second.db, sql`select current_setting('shared_buffers') as buffers`);
      expect(settings?.buffers).toBe('32MB');
    } finally {
      await second.close();
    }
  }, 300_000);

  it('runs an in-memory database with the same buffer pool', async () => {
    const database = await createDatabase();
    try {
      const [settings] = await queryRows<{ buffers: string }>(database.db, sql`select current_setting('shared_buffers') as buffers`);
      expect(settings?.buffers).toBe('32MB');
    } finally {
      await database.close();
    }
  }, 120_000);
});
