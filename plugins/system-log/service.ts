import { REDACTED, scrubSecrets, SECRET_NAME } from '../../src/secrets.js';
import { and, desc, eq, gte, inArray, lt, lte, type SQL } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import type { Db } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import type { LogLevel } from './schemas.js';
import { systemLogs } from './table.js';
import { bulkInsert } from '../../db/bulk-insert.js';

export type SystemLogRow = typeof systemLogs.$inferSelect;
export type SystemLogInsert = typeof systemLogs.$inferInsert;

/** What a pack hands to `app.systemLog.write()`. */
export interface SystemLogEntry {
  level: LogLevel;
  /** The pack or component that speaks, e.g. `kernel`, `security`. */
  source: string;
  /** Dotted event name, e.g. `kernel.started`, `blocklist.rule-created`. */
  event: string;
  message: string;
  correlationId?: string | null;
  actor?: string | null;
  /** Details; keys that look like secrets are redacted before the row is written. */
  data?: Record<string, unknown> | null;
  /** Defaults to now. */
  occurredAt?: Date;
}

export interface SystemLogFilter {
  level?: LogLevel[];
  source?: string[];
  event?: string[];
  correlationId?: string[];
  actor?: string[];
  since?: string;
  until?: string;
  limit: number;
  cursor?: string;
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

const MAX_DEPTH = 8;
const MAX_KEYS = 100;
const MAX_ITEMS = 100;
const MAX_STRING = 2000;

/**
 * A JSON copy of `value` with secret-looking keys replaced by `[redacted]`, bounded in depth,
 * width and string length so one careless caller cannot bloat the table or leak a credential.
 */
export function redactSecrets(value: unknown, depth = 0): JsonValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
      return scrubSecrets(value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value);
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'object':
      break;
    default:
      return null;
  }
  if (depth >= MAX_DEPTH) return '[truncated]';
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Error) return { name: value.name, message: redactSecrets(value.message, depth + 1) };
  if (Array.isArray(value)) return value.slice(0, MAX_ITEMS).map((v) => redactSecrets(v, depth + 1));
  // Object.fromEntries defines own properties, so a `__proto__` key stays a plain key.
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>)
      .slice(0, MAX_KEYS)
      .map(([k, v]) => [k, SECRET_NAME.test(k) ? REDACTED : redactSecrets(v, depth + 1)]),
  );
}

const cut = (s: string, max: number): string => (s.length > max ? s.slice(0, max) : s);

export function toSystemLogRow(entry: SystemLogEntry, instanceId: string): SystemLogInsert {
  return {
    occurredAt: entry.occurredAt ?? new Date(),
    level: entry.level,
    source: cut(entry.source, 64),
    event: cut(entry.event, 128),
    message: scrubSecrets(cut(entry.message, 2000)),
    correlationId: entry.correlationId ? cut(entry.correlationId, 128) : null,
    actor: entry.actor ? cut(entry.actor, 200) : null,
    instanceId,
    data: entry.data ? redactSecrets(entry.data) : null,
  };
}

function anyOf<T extends string>(column: PgColumn, values: T[] | undefined): SQL | undefined {
  if (!values?.length) return undefined;
  return values.length === 1 ? eq(column, values[0]) : inArray(column, values);
}

export function createSystemLogService(deps: { db: Db }) {
  return {
    async insertMany(rows: SystemLogInsert[]): Promise<void> {
      await bulkInsert(deps.db, systemLogs, rows);
    },

    /** Newest first by id; every filter column has an index ending in `id` (see table.ts). */
    async query(f: SystemLogFilter): Promise<Page<SystemLogRow>> {
      const where = [
        anyOf(systemLogs.level, f.level),
        anyOf(systemLogs.source, f.source),
        anyOf(systemLogs.event, f.event),
        anyOf(systemLogs.correlationId, f.correlationId),
        anyOf(systemLogs.actor, f.actor),
        f.since ? gte(systemLogs.occurredAt, new Date(f.since)) : undefined,
        f.until ? lte(systemLogs.occurredAt, new Date(f.until)) : undefined,
      ];
      const afterId = decodeIdCursor(f.cursor);
      if (afterId !== undefined) where.push(lt(systemLogs.id, afterId));
      const rows = await deps.db
        .select()
        .from(systemLogs)
        .where(and(...where))
        .orderBy(desc(systemLogs.id))
        .limit(f.limit + 1);
      return toPage(rows, f.limit, (r) => [r.id], (r) => r);
    },
  };
}
export type SystemLogService = ReturnType<typeof createSystemLogService>;
