import { createHash } from 'node:crypto';
import { and, asc, desc, eq, gt, gte, lt, sql, type SQL } from 'drizzle-orm';
import { type Db, type DbOrTx } from '../../db/client.js';
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

    async byId(id: number): Promise<Honeypot | undefined> {
      const [row] = await db.select().from(honeypotInstances).where(eq(honeypotInstances.id, id)).limit(1);
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
     * Stores a batch of hits and adds them to the per-minute (per honeypot) and per-hour (per
     * source) rollups, in one transaction so the counts never disagree with the rows.
     */
    async writeHits(rows: NewTelemetry[]): Promise<void> {
      if (rows.length === 0) return;
      const perHoneypot = new Map<string, { honeypotId: number; bucket: Date; hits: number }>();
      const perSource = new Map<string, { sourceIp: string; bucket: Date; hits: number }>();
      for (const r of rows) {
        const minute = new Date(Math.floor(r.occurredAt.getTime() / 60_000) * 60_000);
        const hour = new Date(Math.floor(r.occurredAt.getTime() / 3_600_000) * 3_600_000);
        const hk = `${r.honeypotId}|${minute.getTime()}`;
        const h = perHoneypot.get(hk) ?? perHoneypot.set(hk, { honeypotId: r.honeypotId, bucket: minute, hits: 0 }).get(hk)!;
        h.hits++;
        const sk = `${r.sourceIp}|${hour.getTime()}`;
        const s = perSource.get(sk) ?? perSource.set(sk, { sourceIp: r.sourceIp, bucket: hour, hits: 0 }).get(sk)!;
        s.hits++;
      }
      await db.transaction(async (tx) => {
        await tx.insert(honeypotTelemetry).values(rows);
        await tx
          .insert(honeypotHitRollups)
          .values([...perHoneypot.values()])
          .onConflictDoUpdate({ target: [honeypotHitRollups.bucket, honeypotHitRollups.honeypotId], set: { hits: sql`${honeypotHitRollups.hits} + excluded.hits` } });
        await tx
          .insert(honeypotSourceRollups)
          .values([...perSource.values()])
          .onConflictDoUpdate({ target: [honeypotSourceRollups.bucket, honeypotSourceRollups.sourceIp], set: { hits: sql`${honeypotSourceRollups.hits} + excluded.hits` } });
      });
    },

    /**
     * Hits in `[since, until)` from the rollups: per honeypot to the minute, top sources to the
     * hour (a source's count covers the whole hour `since` falls in).
     */
    async hitFigures(since: Date, until: Date, topN = 10): Promise<HitFigures> {
      const minuteFrom = new Date(Math.floor(since.getTime() / 60_000) * 60_000);
      const hourFrom = new Date(Math.floor(since.getTime() / 3_600_000) * 3_600_000);
      const [byHoneypot, topSources] = await Promise.all([
        db
          .select({ honeypotId: honeypotHitRollups.honeypotId, name: honeypotInstances.name, hits: sql<string>`sum(${honeypotHitRollups.hits})` })
          .from(honeypotHitRollups)
          .leftJoin(honeypotInstances, eq(honeypotInstances.id, honeypotHitRollups.honeypotId))
          .where(and(gte(honeypotHitRollups.bucket, minuteFrom), lt(honeypotHitRollups.bucket, until)))
          .groupBy(honeypotHitRollups.honeypotId, honeypotInstances.name)
          .orderBy(desc(sql`sum(${honeypotHitRollups.hits})`), asc(honeypotHitRollups.honeypotId)),
        db
          .select({ address: honeypotSourceRollups.sourceIp, hits: sql<string>`sum(${honeypotSourceRollups.hits})` })
          .from(honeypotSourceRollups)
          .where(and(gte(honeypotSourceRollups.bucket, hourFrom), lt(honeypotSourceRollups.bucket, until)))
          .groupBy(honeypotSourceRollups.sourceIp)
          .orderBy(desc(sql`sum(${honeypotSourceRollups.hits})`), asc(honeypotSourceRollups.sourceIp))
          .limit(topN),
      ]);
      const items = byHoneypot.map((r) => ({ honeypotId: r.honeypotId, name: r.name, hits: Number(r.hits) }));
      return {
        total: items.reduce((sum, r) => sum + r.hits, 0),
        byHoneypot: items,
        topSources: topSources.map((r) => ({ address: r.address, hits: Number(r.hits) })),
      };
    },
  };
}
export type HoneypotService = ReturnType<typeof createHoneypotService>;
