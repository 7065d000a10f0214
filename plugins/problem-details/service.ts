import { scrubSecrets } from '../../src/secrets.js';
import { and, count, desc, eq, gte, lt, lte, type SQL } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import type { ServerErrorEvent } from '../../src/error-handler.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { errorEvents } from './table.js';
import { bulkInsert } from '../../db/bulk-insert.js';

export type ErrorEventRow = typeof errorEvents.$inferSelect;
export type ErrorEventInsert = typeof errorEvents.$inferInsert;

export interface ErrorEventFilter {
  kind?: string;
  route?: string;
  correlationId?: string;
  since?: string;
  until?: string;
  limit: number;
  cursor?: string;
}

/** Stack traces are kept for operators only (never returned to the client that caused them). */
export function toErrorEventRow(event: ServerErrorEvent, instanceId: string): ErrorEventInsert {
  return {
    occurredAt: new Date(),
    kind: event.kind,
    message: scrubSecrets(event.message.slice(0, 2000)),
    stack: event.stack ? scrubSecrets(event.stack.slice(0, 8000)) : null,
    method: event.method,
    route: event.route.slice(0, 500),
    url: scrubSecrets(event.url.slice(0, 2000)),
    statusCode: event.statusCode,
    correlationId: event.correlationId,
    instanceId,
  };
}

export function createErrorEventService(deps: { db: Db }) {
  return {
    async insertMany(rows: Array<ErrorEventInsert>): Promise<void> {
      await bulkInsert(deps.db, errorEvents, rows);
    },
    async list(f: ErrorEventFilter): Promise<Page<ErrorEventRow>> {
      const where: SQL[] = [];
      if (f.kind) where.push(eq(errorEvents.kind, f.kind));
      if (f.route) where.push(eq(errorEvents.route, f.route));
      if (f.correlationId) where.push(eq(errorEvents.correlationId, f.correlationId));
      if (f.since) where.push(gte(errorEvents.occurredAt, new Date(f.since)));
      if (f.until) where.push(lte(errorEvents.occurredAt, new Date(f.until)));
      const afterId = decodeIdCursor(f.cursor);
      if (afterId !== undefined) where.push(lt(errorEvents.id, afterId));
      const rows = await deps.db
        .select()
        .from(errorEvents)
        .where(where.length ? and(...where) : undefined)
        .orderBy(desc(errorEvents.id))
        .limit(f.limit + 1);
      return toPage(rows, f.limit, (r) => [r.id], (r) => r);
    },
    /** How many errors were recorded since `since` (the admin overview's last hour). */
    async countSince(since: Date): Promise<number> {
      const [row] = await deps.db.select({ n: count() }).from(errorEvents).where(gte(errorEvents.occurredAt, since));
      return row?.n ?? 0;
    },
    async byId(id: number): Promise<ErrorEventRow | undefined> {
      const [row] = await deps.db.select().from(errorEvents).where(eq(errorEvents.id, id)).limit(1);
      return row;
    },
  };
}
export type ErrorEventService = ReturnType<typeof createErrorEventService>;
