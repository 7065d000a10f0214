import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';
import { createJobRunner } from '../../src/jobs/runner.js';
import { createTestDatabase, serverUrl, type TestDatabase } from '../helpers/database.js';
import { FaultyProxy } from '../helpers/faulty-proxy.js';

type Line = { level: string; msg: string };

/** A logger that keeps what the runner says (pino's call shape: fields, then message). */
function capturingLog(lines: Line[]) {
  const at = (level: string) => (_fields: unknown, msg?: string) => void lines.push({ level, msg: msg ?? '' });
  const log = { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug'), trace: at('trace'), fatal: at('fatal'), child: () => log, level: 'debug', silent() {} };
  return log;
}

describe.skipIf(!serverUrl())('job runner during a database outage', () => {
  let database: TestDatabase;
  let proxy: FaultyProxy;
  let proxied: Database;

  beforeAll(async () => {
    database = await createTestDatabase();
    const direct = new URL(database.url!);
    proxy = new FaultyProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    const url = new URL(database.url!);
    url.hostname = '127.0.0.1';
    url.port = String(await proxy.listen());
    proxied = await createDatabase({ url: url.toString(), max: 2, acquireTimeoutMs: 200 });
  });

  afterAll(async () => {
    proxy?.restore();
    await proxied?.close();
    await proxy?.close();
    await database?.drop();
  });

  it('warns once when polls start failing and once when they recover, not on every tick', async () => {
    const lines: Line[] = [];
    const runner = createJobRunner({ database: proxied, log: capturingLog(lines), instanceId: 'poll-outage', pollIntervalMs: 20 });
    runner.defineQueued({ name: 'noop', handler: async () => {} });
    runner.start();
    try {
      proxy.cut();
      const start = Date.now();
      while (lines.filter((l) => l.msg.startsWith('job poll failed again')).length < 5 && Date.now() - start < 10_000) await new Promise((r) => setTimeout(r, 20));
      proxy.restore();
      const restored = Date.now();
      while (!lines.some((l) => l.msg === 'job poll recovered') && Date.now() - restored < 10_000) await new Promise((r) => setTimeout(r, 20));
    } finally {
      await runner.stop();
    }
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(['job poll failed; retrying every tick, logging again when it recovers']);
    expect(lines.filter((l) => l.msg.startsWith('job poll failed again')).length).toBeGreaterThanOrEqual(5);
    expect(lines.filter((l) => l.msg === 'job poll recovered')).toHaveLength(1);
  });
});
