import { performance } from 'node:perf_hooks';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { createDatabase } from '../db/client.js';
import { runMigrations } from '../db/migrate.js';
import { generateApiKey } from '../plugins/api-keys/key-format.js';
import { buildApp } from '../src/app.js';
import { envWith } from '../src/env.js';
import { withDatabase } from '../test/helpers/database.js';

// `npm run bench:dashboard` (PostgreSQL: TEST_DATABASE_URL or DATABASE_URL): p95 of
// `GET /system/security/dashboard` for each window with BENCH_TELEMETRY_ROWS honeypot telemetry
// rows (default 1,000,000) spread over the last 7 days from 5,000 addresses, on a fresh database
// of its own. The rollups are built from the seeded rows by the same grouping the telemetry
// writer applies (per honeypot per minute and per hour, per source per hour and per day). For comparison it also times
// the count a dashboard without rollups would run (telemetry rows in the window, on the
// occurred_at index).

function intFromEnv(name: string, fallback: number): number {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}
const ROWS = intFromEnv('BENCH_TELEMETRY_ROWS', 1_000_000);
const REQUESTS = intFromEnv('BENCH_REQUESTS', 200);
const HONEYPOTS = 20;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0;

async function main() {
  const server = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (!server) throw new Error('set TEST_DATABASE_URL (PostgreSQL): the target is measured on the server');
  // A database of its own, dropped at the end (the test helpers need vitest, so not those).
  const name = `vk_bench_dashboard_${process.pid}`;
  const admin = postgres(server, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = withDatabase(server, name);
  const database = await createDatabase({ url, max: 10 });
  await runMigrations(database, url);
  const adminKey = generateApiKey().token;
  const app = await buildApp({
    logger: false,
    migrate: false,
    env: envWith({ LOG_LEVEL: 'silent', RUN_JOBS: false, PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0, RATE_LIMIT_DEFAULT_MAX: 0, DATABASE_URL: url, ADMIN_API_KEY: adminKey }),
    database,
  });
  const t = { app, inject: (o: { method: 'GET' | 'POST'; url: string; payload?: Record<string, unknown> }) => app.inject({ ...o, headers: { authorization: `Bearer ${adminKey}` } }) };
  try {
    for (let i = 0; i < HONEYPOTS; i++) {
      const res = await t.inject({ method: 'POST', url: '/system/security/honeypots', payload: { name: `bench-${i}`, type: 'path', path: `/bench/${i}/.env`, template: 'dotenv' } });
      if (res.statusCode !== 201) throw new Error(res.body);
    }
    const seedStart = performance.now();
    for (let done = 0; done < ROWS; done += 100_000) {
      const count = Math.min(100_000, ROWS - done);
      await t.app.db.execute(sql`insert into honeypot_telemetry (honeypot_id, occurred_at, source_ip, user_agent, method, path, headers, correlation_id)
        select 1 + (g % ${HONEYPOTS}::int), now() - (random() * interval '7 days'), '10.' || (g % 20) || '.' || ((g / 20) % 250) || '.' || (g % 7),
          'sqlmap/1.7', 'GET', '/bench/' || (g % ${HONEYPOTS}::int) || '/.env', '{"user-agent":"sqlmap/1.7"}'::jsonb, 'bench-' || g
        from generate_series(${done + 1}::int, ${done + count}::int) g`);
    }
    for (const unit of ['minute', 'hour']) {
      await t.app.db.execute(sql`insert into honeypot_hit_rollups (period, bucket, honeypot_id, hits)
        select ${unit === 'minute' ? 60 : 3600}::int, date_trunc(${unit}, occurred_at), honeypot_id, count(*) from honeypot_telemetry group by 2, 3`);
    }
    for (const unit of ['hour', 'day']) {
      await t.app.db.execute(sql`insert into honeypot_source_rollups (period, source_ip, bucket, hits)
        select ${unit === 'hour' ? 3600 : 86_400}::int, source_ip, date_trunc(${unit}, occurred_at), count(*) from honeypot_telemetry group by 2, 3`);
    }
    await t.app.db.execute(sql`analyze honeypot_telemetry`);
    await t.app.db.execute(sql`analyze honeypot_hit_rollups`);
    await t.app.db.execute(sql`analyze honeypot_source_rollups`);
    const [sizes] = await t.app.db.execute(sql`select (select count(*) from honeypot_telemetry) as telemetry, (select count(*) from honeypot_hit_rollups) as honeypot_rollups, (select count(*) from honeypot_source_rollups) as source_rollups`).then((r) => [...(r as Iterable<Record<string, unknown>>)]);
    console.log(`seeded in ${((performance.now() - seedStart) / 1000).toFixed(1)} s: ${JSON.stringify(sizes)}`);

    for (const window of ['1h', '24h', '7d'] as const) {
      const times: number[] = [];
      let total = 0;
      for (let i = 0; i < REQUESTS + 20; i++) {
        const start = performance.now();
        const res = await t.inject({ method: 'GET', url: `/system/security/dashboard?window=${window}` });
        const ms = performance.now() - start;
        if (res.statusCode !== 200) throw new Error(res.body);
        total = res.json<{ honeypotHits: { total: number } }>().honeypotHits.total;
        if (i >= 20) times.push(ms);
      }
      console.log(`dashboard window=${window.padEnd(3)} p50 ${pct(times, 0.5).toFixed(1)} ms  p95 ${pct(times, 0.95).toFixed(1)} ms  max ${Math.max(...times).toFixed(1)} ms  (${REQUESTS} requests, ${total} hits counted)`);
    }
    for (const window of ['1 hour', '7 days']) {
      const start = performance.now();
      await t.app.db.execute(sql`select count(*) from honeypot_telemetry where occurred_at >= now() - ${window}::interval`);
      console.log(`without rollups: count(*) of telemetry in the last ${window}: ${(performance.now() - start).toFixed(1)} ms (one query)`);
    }
  } finally {
    await app.close();
    await database.close().catch(() => {});
    // BENCH_KEEP=1 leaves the database for EXPLAIN.
    if (!process.env.BENCH_KEEP) await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
  }
}

await main();
