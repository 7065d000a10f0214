import type { FastifyRequest } from 'fastify';
import type { Db, DbOrTx } from '../db/client.js';
import type { Audit } from './kernel.js';
import type { StateCache, StateEntry } from './state-cache.js';

/** What one control-plane write records in the audit trail (actor and correlation id come from the request). */
export type AuditDescription = Parameters<Audit['record']>[2];

/** What a write-through body returns: its result, and the audit entries describing what it changed. */
export interface WriteOutcome<T> {
  result: T;
  /** One entry, several (a bulk write), or none (`null` or `[]`). */
  audit: AuditDescription | AuditDescription[] | null;
  /**
   * `false`: the body found nothing to change, so nothing is notified or reloaded (a periodic
   * sweep that usually finds nothing must not make every instance reload on each run).
   * Default `true`.
   */
  changed?: boolean;
}

export interface WriteThroughOptions {
  /**
   * The in-memory state this write changes: each is notified inside the transaction (so every
   * instance reloads it on commit) and reloaded here before the helper returns.
   */
  refresh?: ReadonlyArray<Pick<StateEntry<unknown>, 'name' | 'reload'>>;
}

/**
 * A control-plane write in one call: `write` runs in a transaction, its audit entries are
 * recorded in that transaction, each state entry in `refresh` is notified on commit
 * (`NOTIFY valhalla_state`), and this instance reloads them before the caller replies, so the
 * writer reads its own write and every other instance has it within a second.
 * Whatever `write` throws rolls the whole thing back (no audit entry, no notification); a body
 * that returns `changed: false` is not notified or reloaded.
 */
export type WriteThrough = <T>(
  request: FastifyRequest | null,
  options: WriteThroughOptions,
  write: (tx: DbOrTx) => Promise<WriteOutcome<T>>,
) => Promise<T>;

export function createWriteThrough(deps: { db: Db; audit: Audit; stateCache: Pick<StateCache, 'notify'> }): WriteThrough {
  return async (request, options, write) => {
    const refresh = options.refresh ?? [];
    const { result, changed } = await deps.db.transaction(async (tx) => {
      const outcome = await write(tx);
      const entries = outcome.audit === null ? [] : Array.isArray(outcome.audit) ? outcome.audit : [outcome.audit];
      for (const entry of entries) await deps.audit.record(tx, request, entry);
      const changed = outcome.changed ?? true;
      if (changed) for (const entry of refresh) await deps.stateCache.notify(tx, entry.name);
      return { result: outcome.result, changed };
    });
    if (changed) await Promise.all(refresh.map((entry) => entry.reload()));
    return result;
  };
}
