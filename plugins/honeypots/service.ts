import { createHash } from 'node:crypto';
import { and, asc, desc, eq, gt, gte, lt, or, sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db, type DbOrTx } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique } from '../../src/problem.js';
import { generateApiKey } from '../api-keys/key-format.js';
import { canonicalDecoyPath, DECOY_TEMPLATES, DEFAULT_DECOY_RESPONSE } from './decoys.js';
import type { CreateHoneypot, Honeypot, HoneypotFilter, Telemetry, TelemetryFilter, UpdateHoneypot } from './schemas.js';
import { honeypotHitRollups, honeypotInstances, honeypotSourceRollups, honeypotTelemetry } from './table.js';

type HoneypotRow = typeof honeypotInstances.$inferSelect;
type TelemetryRow = typeof honeypotTelemetry.$inferSelect;
export type NewTelemetry = Omit<typeof honeypotTelemetry.$inferInsert, 'id'>;

/** What the request hooks need of an enabled honeypot, held in memory. */
export interface ActiveHoneypot {
  id: number;
  name: string;
  type: HoneypotRow['type'];
  path: string | null;
  response: { status: number; contentType: string; body: string };
  autoBlock: boolean;
  blockTtlSeconds: number | null;
  severity: HoneypotRow['severity'];
  /** canary_key: SHA-256 of the secret. */
  secretHash: Buffer | null;
  keyId: string | null;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const floorTo = (d: Date, ms: number): Date => new Date(Math.floor(d.getTime() / ms) * ms);
const ceilTo = (d: Date, ms: number): Date => new Date(Math.ceil(d.getTime() / ms) * ms);

export const sha256Hex = (secret: string): string => createHash('sha256').update(secret).digest('hex');

const toHoneypot = (row: HoneypotRow): Honeypot => ({
  id: row.id,
  name: row.name,
  type: row.type,
  description: row.description,
  enabled: row.enabled,
  path: row.path,
  response: row.type === 'path' ? { status: row.responseStatus, contentType: row.responseContentType, body: row.responseBody } : null,
  keyId: row.keyId,
  autoBlock: row.autoBlock,
  blockTtlSeconds: row.blockTtlSeconds,
  severity: row.severity,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

const toTelemetry = (row: TelemetryRow): Telemetry => ({
  id: row.id,
  honeypotId: row.honeypotId,
  occurredAt: row.occurredAt.toISOString(),
  sourceIp: row.sourceIp,
  userAgent: row.userAgent,
  method: row.method,
  path: row.path,
  headers: row.headers,
  correlationId: row.correlationId,
});

/** A unique name, path or key id taken: the client's conflict (409). */
const rethrowDuplicate = (name: string, path: string | null | undefined) =>
  conflictOnUnique(`A honeypot named '${name}'${path ? ` or with the path '${path}'` : ''} already exists.`, { name, ...(path ? { path } : {}) });

export interface HitFigures {
  total: number;
  byHoneypot: Array<{ honeypotId: number; name: string | null; hits: number }>;
  topSources: Array<{ address: string; hits: number }>;
}

/** Honeypots and their telemetry, without HTTP: writes take the caller's transaction. */
export function createHoneypotService(deps: { db: Db }) {
  const { db } = deps;
  return {
    async list(filter: HoneypotFilter & { limit: number }): Promise<Page<Honeypot>> {
      const where: SQL[] = [];
      if (filter.type) where.push(eq(honeypotInstances.type, filter.type));
      const afterId = decodeIdCursor(filter.cursor);
      if (afterId !== undefined) where.push(gt(honeypotInstances.id, afterId));
      const rows = await db
        .select()
        .from(honeypotInstances)
        .where(where.length ? and(...where) : undefined)
        .orderBy(asc(honeypotInstances.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toHoneypot);
    },

    /** Pass the transaction when inside one (PGlite has a single connection: `db` would wait forever). */
    async byId(id: number, q: DbOrTx = db): Promise<Honeypot | undefined> {
      const [row] = await q.select().from(honeypotInstances).where(eq(honeypotInstances.id, id)).limit(1);
      return row && toHoneypot(row);
    },

    /** Every enabled honeypot: what the request hooks hold in memory. */
    async active(): Promise<ActiveHoneypot[]> {
      const rows = await db.select().from(honeypotInstances).where(eq(honeypotInstances.enabled, true));
      return rows.map((r) => ({
        id: r.id,
        name: r.name,
        type: r.type,
        path: r.path,
        response: { status: r.responseStatus, contentType: r.responseContentType, body: r.responseBody },
        autoBlock: r.autoBlock,
        blockTtlSeconds: r.blockTtlSeconds,
        severity: r.severity,
        secretHash: r.secretHash ? Buffer.from(r.secretHash, 'hex') : null,
        keyId: r.keyId,
      }));
    },

    /**
     * A new honeypot. A `canary_key` gets a fresh key in the real format: its token is returned
     * here once, only its id and secret hash are stored. The caller has validated the path.
     */
    async create(tx: DbOrTx, input: CreateHoneypot): Promise<{ honeypot: Honeypot; token?: string }> {
      const template = input.template ? DECOY_TEMPLATES[input.template] : DEFAULT_DECOY_RESPONSE;
      const key = input.type === 'canary_key' ? generateApiKey() : undefined;
      const path = input.type === 'path' && input.path ? canonicalDecoyPath(input.path) : null;
      const [row] = await tx
        .insert(honeypotInstances)
        .values({
          name: input.name,
          type: input.type,
          description: input.description ?? '',
          enabled: input.enabled ?? true,
          path,
          responseStatus: input.status ?? template.status,
          responseContentType: input.contentType ?? template.contentType,
          responseBody: input.body ?? template.body,
          keyId: key?.keyId ?? null,
          secretHash: key ? sha256Hex(key.secret) : null,
          autoBlock: input.autoBlock ?? false,
          blockTtlSeconds: input.blockTtlSeconds === undefined ? 3600 : input.blockTtlSeconds,
          severity: input.severity ?? 'high',
        })
        .returning()
        .catch(rethrowDuplicate(input.name, path));
      return { honeypot: toHoneypot(row!), ...(key ? { token: key.token } : {}) };
    },

    /** Undefined when there is no such honeypot. */
    async update(tx: DbOrTx, id: number, patch: UpdateHoneypot): Promise<{ before: Honeypot; after: Honeypot } | undefined> {
      const [current] = await tx.select().from(honeypotInstances).where(eq(honeypotInstances.id, id)).for('update');
      if (!current) return undefined;
      const path = patch.path === undefined ? undefined : canonicalDecoyPath(patch.path);
      const [row] = await tx
        .update(honeypotInstances)
        .set({
          name: patch.name,
          description: patch.description,
          enabled: patch.enabled,
          path,
          responseStatus: patch.status,
          responseContentType: patch.contentType,
          responseBody: patch.body,
          autoBlock: patch.autoBlock,
          blockTtlSeconds: patch.blockTtlSeconds,
          severity: patch.severity,
          updatedAt: new Date(),
        })
        .where(eq(honeypotInstances.id, id))
        .returning()
        .catch(rethrowDuplicate(patch.name ?? current.name, path));
      return { before: toHoneypot(current), after: toHoneypot(row!) };
    },

    async remove(tx: DbOrTx, id: number): Promise<Honeypot | undefined> {
      const [row] = await tx.delete(honeypotInstances).where(eq(honeypotInstances.id, id)).returning();
      return row && toHoneypot(row);
    },

    /** A honeypot's hits, newest first; keyset on id. */
    async telemetry(honeypotId: number, filter: TelemetryFilter & { limit: number }): Promise<Page<Telemetry>> {
      const where: SQL[] = [eq(honeypotTelemetry.honeypotId, honeypotId)];
      if (filter.sourceIp) where.push(eq(honeypotTelemetry.sourceIp, filter.sourceIp));
      const beforeId = decodeIdCursor(filter.cursor);
      if (beforeId !== undefined) where.push(lt(honeypotTelemetry.id, beforeId));
      const rows = await db
        .select()
        .from(honeypotTelemetry)
        .where(and(...where))
        .orderBy(desc(honeypotTelemetry.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toTelemetry);
    },

    /**
     * Stores a batch of hits and adds them to the rollups (per honeypot per minute and per hour,
     * per source per hour and per day) in one transaction, so the counts never disagree with the rows.
     */
    async writeHits(rows: NewTelemetry[]): Promise<void> {
      if (rows.length === 0) return;
      const perHoneypot = new Map<string, { period: number; bucket: Date; honeypotId: number; hits: number }>();
      const perSource = new Map<string, { period: number; sourceIp: string; bucket: Date; hits: number }>();
      for (const r of rows) {
        for (const period of [60, 3600]) {
          const bucket = floorTo(r.occurredAt, period * 1000);
          const key = `${period}|${bucket.getTime()}|${r.honeypotId}`;
          const h = perHoneypot.get(key) ?? perHoneypot.set(key, { period, bucket, honeypotId: r.honeypotId, hits: 0 }).get(key)!;
          h.hits++;
        }
        for (const period of [3600, 86_400]) {
          const bucket = floorTo(r.occurredAt, period * 1000);
          const key = `${period}|${bucket.getTime()}|${r.sourceIp}`;
          const s = perSource.get(key) ?? perSource.set(key, { period, sourceIp: r.sourceIp, bucket, hits: 0 }).get(key)!;
          s.hits++;
        }
      }
      await db.transaction(async (tx) => {
        await tx.insert(honeypotTelemetry).values(rows);
        await tx
          .insert(honeypotHitRollups)
          .values([...perHoneypot.values()])
          .onConflictDoUpdate({
            target: [honeypotHitRollups.period, honeypotHitRollups.bucket, honeypotHitRollups.honeypotId],
            set: { hits: sql`${honeypotHitRollups.hits} + excluded.hits` },
          });
        await tx
          .insert(honeypotSourceRollups)
          .values([...perSource.values()])
          .onConflictDoUpdate({ target: [honeypotSourceRollups.period, honeypotSourceRollups.sourceIp, honeypotSourceRollups.bucket], set: { hits: sql`${honeypotSourceRollups.hits} + excluded.hits` } });
      });
    },

    /**
     * Hits in `[since, until)` from the rollups. Per honeypot exact to the minute: whole hours
     * from the hourly buckets, the partial first and last hours from the minute buckets. Top
     * sources to the hour for windows up to two days, to the day beyond (a source's count covers
     * the whole hour or day `since` falls in), taken from each bucket's top `topN` sources: a
     * source in no bucket's top is not listed.
     */
    async hitFigures(since: Date, until: Date, topN = 10): Promise<HitFigures> {
      const from = floorTo(since, MINUTE);
      const firstHour = ceilTo(from, HOUR);
      const lastHour = floorTo(until, HOUR);
      const r = honeypotHitRollups;
      const minutes = (a: Date, b: Date) => and(eq(r.period, 60), gte(r.bucket, a), lt(r.bucket, b));
      const inWindow =
        firstHour < lastHour
          ? or(and(eq(r.period, 3600), gte(r.bucket, firstHour), lt(r.bucket, lastHour)), minutes(from, firstHour), minutes(lastHour, until))
          : minutes(from, until);
      const sourcePeriod = until.getTime() - since.getTime() > 2 * DAY ? DAY : HOUR;
      const sourceFrom = floorTo(since, sourcePeriod);
      const [byHoneypot, topSources] = await Promise.all([
        db
          .select({ honeypotId: r.honeypotId, name: honeypotInstances.name, hits: sql<string>`sum(${r.hits})` })
          .from(r)
          .leftJoin(honeypotInstances, eq(honeypotInstances.id, r.honeypotId))
          .where(inWindow)
          .groupBy(r.honeypotId, honeypotInstances.name)
          .orderBy(desc(sql`sum(${r.hits})`), asc(r.honeypotId)),
        queryRows<{ address: string; hits: string }>(
          db,
          sql`with candidates as (
                select distinct top.source_ip
                -- an array, not the set function: the planner guesses 10 rows for it, not 1,000 (which made the plan expensive enough to JIT-compile, 300 ms)
                from unnest(array(select generate_series(${sourceFrom.toISOString()}::timestamptz, ${until.toISOString()}::timestamptz, ${`${sourcePeriod / 1000} seconds`}::interval))) as b(bucket)
                cross join lateral (
                  -- "nulls last" as in the index, so the index gives the order
                  select s.source_ip from honeypot_source_rollups s
                  where s.period = ${sourcePeriod / 1000}::int and s.bucket = b.bucket order by s.hits desc nulls last limit ${topN}::int
                ) top
              )
              select s.source_ip as address, sum(s.hits) as hits
              from honeypot_source_rollups s join candidates c on c.source_ip = s.source_ip
              where s.period = ${sourcePeriod / 1000}::int and s.bucket >= ${sourceFrom.toISOString()}::timestamptz and s.bucket < ${until.toISOString()}::timestamptz
              group by s.source_ip
              order by sum(s.hits) desc, s.source_ip
              limit ${topN}::int`,
        ),
      ]);
      const items = byHoneypot.map((h) => ({ honeypotId: h.honeypotId, name: h.name, hits: Number(h.hits) }));
      return {
        total: items.reduce((sum, h) => sum + h.hits, 0),
        byHoneypot: items,
        topSources: topSources.map((s) => ({ address: s.address, hits: Number(s.hits) })),
      };
    },
  };
}
export type HoneypotService = ReturnType<typeof createHoneypotService>;
