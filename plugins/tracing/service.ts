import { and, asc, count, desc, eq, gte, inArray, lt, lte } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { traceSpans } from './table.js';
import { bulkInsert } from '../../db/bulk-insert.js';

export type TraceSpanRow = typeof traceSpans.$inferSelect;
export type TraceSpanInsert = typeof traceSpans.$inferInsert;
export type SpanStatus = TraceSpanRow['status'];
export type TraceSummaryRow = TraceSpanRow & { spanCount: number };

export interface TraceListFilter {
  minDurationMs?: number;
  status?: SpanStatus;
  since?: string;
  until?: string;
  limit: number;
  cursor?: string;
}

/** A span with the spans started under it, in start order. */
export type SpanTreeNode = TraceSpanRow & { children: SpanTreeNode[] };

/** Spans read for one trace at most; a bigger trace is answered with the first ones and `truncated`. */
export const TRACE_SPANS_MAX = 2000;

/**
 * Links spans to their parents. A span whose parent is not in the set (the caller's span in
 * another service, or a span not sampled) is a root. Built without recursion, and every span
 * appears exactly once even if ids repeat or parent links form a cycle.
 */
export function buildSpanTree(spans: TraceSpanRow[]): SpanTreeNode[] {
  const nodes = spans.map((s): SpanTreeNode => ({ ...s, children: [] }));
  const bySpanId = new Map<string, SpanTreeNode>();
  for (const node of nodes) if (!bySpanId.has(node.spanId)) bySpanId.set(node.spanId, node);
  const roots: SpanTreeNode[] = [];
  for (const node of nodes) {
    const parent = node.parentSpanId === null ? undefined : bySpanId.get(node.parentSpanId);
    if (parent && parent !== node) parent.children.push(node);
    else roots.push(node);
  }
  // Spans caught in a parent cycle are reachable from no root: walk from the roots and lift
  // whatever was not reached to the top level, cutting the cycle there.
  const reached = new Set<SpanTreeNode>();
  const walk = (from: SpanTreeNode[]) => {
    const stack = [...from];
    while (stack.length) {
      const node = stack.pop()!;
      if (reached.has(node)) continue;
      reached.add(node);
      stack.push(...node.children);
    }
  };
  walk(roots);
  for (const node of nodes) {
    if (reached.has(node)) continue;
    const parent = node.parentSpanId === null ? undefined : bySpanId.get(node.parentSpanId);
    if (parent) parent.children = parent.children.filter((c) => c !== node);
    roots.push(node);
    walk([node]);
  }
  return roots;
}

export function createTraceService(deps: { db: Db }) {
  return {
    async insertMany(rows: TraceSpanInsert[]): Promise<void> {
      await bulkInsert(deps.db, traceSpans, rows);
    },

    /** Root spans (where a trace entered this service), newest first, each with its trace's span count. */
    async listRoots(f: TraceListFilter): Promise<Page<TraceSummaryRow>> {
      const where = [
        eq(traceSpans.isRoot, true),
        f.minDurationMs !== undefined ? gte(traceSpans.durationMs, f.minDurationMs) : undefined,
        f.status ? eq(traceSpans.status, f.status) : undefined,
        f.since ? gte(traceSpans.startedAt, new Date(f.since)) : undefined,
        f.until ? lte(traceSpans.startedAt, new Date(f.until)) : undefined,
      ];
      const afterId = decodeIdCursor(f.cursor);
      if (afterId !== undefined) where.push(lt(traceSpans.id, afterId));
      const rows = await deps.db
        .select()
        .from(traceSpans)
        .where(and(...where))
        .orderBy(desc(traceSpans.id))
        .limit(f.limit + 1);
      const page = toPage(rows, f.limit, (r) => [r.id], (r) => r);
      // One grouped lookup on trace_spans_trace_idx for the listed traces only.
      const traceIds = [...new Set(page.items.map((r) => r.traceId))];
      const counts = traceIds.length
        ? await deps.db
            .select({ traceId: traceSpans.traceId, spanCount: count() })
            .from(traceSpans)
            .where(inArray(traceSpans.traceId, traceIds))
            .groupBy(traceSpans.traceId)
        : [];
      const countOf = new Map(counts.map((c) => [c.traceId, c.spanCount]));
      return { items: page.items.map((r) => ({ ...r, spanCount: countOf.get(r.traceId) ?? 1 })), nextCursor: page.nextCursor };
    },

    async spansOf(traceId: string): Promise<{ spans: TraceSpanRow[]; truncated: boolean }> {
      const rows = await deps.db
        .select()
        .from(traceSpans)
        .where(eq(traceSpans.traceId, traceId))
        .orderBy(asc(traceSpans.startedAt), asc(traceSpans.id))
        .limit(TRACE_SPANS_MAX + 1);
      const truncated = rows.length > TRACE_SPANS_MAX;
      return { spans: truncated ? rows.slice(0, TRACE_SPANS_MAX) : rows, truncated };
    },
  };
}
export type TraceService = ReturnType<typeof createTraceService>;
