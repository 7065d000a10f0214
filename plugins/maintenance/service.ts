import { and, asc, desc, eq, gt, isNull, lt, lte, ne, sql, type SQL } from 'drizzle-orm';
import { lockKey, type Db, type DbOrTx } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { ProblemError } from '../../src/problem.js';
import type { ActorRef, FreezeSetting, FreezeView, MaintenanceSnapshot, MaintenanceView, MaintenanceWindow, Mode, ModeSetting, WindowMode } from './effective.js';
import type { CreateWindow, FreezeBody, HistoryItem, MaintenanceStatus, UpdateWindow, WindowBody, WindowFilter } from './schemas.js';
import { maintenanceFreeze, maintenanceState, maintenanceWindows } from './table.js';

type StateRow = typeof maintenanceState.$inferSelect;
type FreezeRow = typeof maintenanceFreeze.$inferSelect;
type WindowRow = typeof maintenanceWindows.$inferSelect;

/** Windows the state cache holds (the nearest ones that have not ended); later ones load as these end. */
const CACHED_WINDOWS = 200;

// Writers of the mode, the freeze and the windows are serialised per transaction, so "before"
// is the row the change replaced and two overlapping windows cannot both be inserted.
const STATE_LOCK = lockKey('maintenance:state');
const FREEZE_LOCK = lockKey('maintenance:freeze');
const WINDOWS_LOCK = lockKey('maintenance:windows');
const lock = (tx: DbOrTx, key: bigint) => tx.execute(sql`select pg_advisory_xact_lock(${key.toString()}::bigint)`);

const actorOf = (row: { actorType: string; actorId: string | null; keyId: string | null }): ActorRef => ({ type: row.actorType, id: row.actorId, keyId: row.keyId });
const source = (s: string): 'manual' | 'expired' => (s === 'expired' ? 'expired' : 'manual');

const toSetting = (row: StateRow): ModeSetting => ({
  id: row.id,
  mode: row.mode as Mode,
  reason: row.reason,
  source: source(row.source),
  actor: actorOf(row),
  since: row.since,
  until: row.until,
});

const toFreeze = (row: FreezeRow): FreezeSetting => ({
  id: row.id,
  enabled: row.enabled,
  reason: row.reason,
  source: source(row.source),
  actor: actorOf(row),
  since: row.since,
  until: row.until,
});

const toWindow = (row: WindowRow): MaintenanceWindow => ({ ...row, mode: row.mode as WindowMode });

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function windowStatus(w: Pick<MaintenanceWindow, 'startsAt' | 'endsAt'>, now: number): WindowBody['status'] {
  if (w.endsAt.getTime() <= now) return 'ended';
  return w.startsAt.getTime() <= now ? 'active' : 'upcoming';
}

export function windowBody(w: MaintenanceWindow, now: number = Date.now()): WindowBody {
  return {
    id: w.id,
    mode: w.mode,
    reason: w.reason,
    startsAt: w.startsAt.toISOString(),
    endsAt: w.endsAt.toISOString(),
    status: windowStatus(w, now),
    createdBy: w.createdBy,
    activatedAt: iso(w.activatedAt),
    completedAt: iso(w.completedAt),
    createdAt: w.createdAt.toISOString(),
    updatedAt: w.updatedAt.toISOString(),
  };
}

export function freezeBody(f: FreezeView): FreezeBody {
  return { enabled: f.enabled, reason: f.reason, source: f.source, actor: f.actor, since: iso(f.since), until: iso(f.until) };
}

/** The JSON of `GET /system/maintenance` for a view computed at `now`. */
export function statusBody(view: MaintenanceView, now: number = view.at): MaintenanceStatus {
  const { setting, effective } = view;
  return {
    mode: setting.mode,
    reason: setting.reason,
    source: setting.source,
    actor: setting.actor,
    since: iso(setting.since),
    until: iso(setting.until),
    effective: { ...effective, since: iso(effective.since), until: iso(effective.until) },
    activeWindow: view.activeWindow && windowBody(view.activeWindow, now),
    nextWindow: view.nextWindow && windowBody(view.nextWindow, now),
    freeze: freezeBody(view.freeze),
  };
}

/** Settings as audit before/after values: plain JSON (dates as ISO strings), so the audit hash reads back equal. */
export const settingJson = (s: ModeSetting | null) => s && { ...s, since: s.since.toISOString(), until: iso(s.until) };
export const freezeJson = (f: FreezeSetting | null) => f && { ...f, since: f.since.toISOString(), until: iso(f.until) };

const invalid = (pointer: string, message: string) =>
  new ProblemError('validation-failed', { detail: `${pointer.slice(2)} ${message}`, errors: [{ in: 'body', pointer, message }] });

/** The body's `until` must lie ahead (a past `until` would switch back at once, which is surely a mistake). */
export function futureUntil(until: string | undefined, now: number, allowed: boolean, notAllowedWhy: string): Date | null {
  if (until === undefined) return null;
  if (!allowed) throw invalid('#/until', notAllowedWhy);
  const at = new Date(until);
  if (at.getTime() <= now) throw invalid('#/until', 'must be in the future');
  return at;
}

export interface NewSetting {
  mode: Mode;
  reason: string;
  source: 'manual' | 'expired';
  actor: ActorRef;
  since: Date;
  until: Date | null;
}

export interface NewFreeze {
  enabled: boolean;
  reason: string;
  source: 'manual' | 'expired';
  actor: ActorRef;
  since: Date;
  until: Date | null;
}

/**
 * Maintenance state without HTTP: reads take the pool, writes the caller's transaction, so the
 * caller records the audit entry, the change event and the state notification with the write.
 */
export function createMaintenanceService(deps: { db: Db }) {
  const { db } = deps;

  async function newestSetting(q: DbOrTx): Promise<ModeSetting | null> {
    const [row] = await q.select().from(maintenanceState).orderBy(desc(maintenanceState.id)).limit(1);
    return row ? toSetting(row) : null;
  }

  async function newestFreeze(q: DbOrTx): Promise<FreezeSetting | null> {
    const [row] = await q.select().from(maintenanceFreeze).orderBy(desc(maintenanceFreeze.id)).limit(1);
    return row ? toFreeze(row) : null;
  }

  function checkWindowTimes(startsAt: Date, endsAt: Date, now: number): void {
    if (endsAt <= startsAt) throw invalid('#/endsAt', 'must be after startsAt');
    if (endsAt.getTime() <= now) throw invalid('#/endsAt', 'must be in the future');
  }

  async function refuseOverlap(tx: DbOrTx, startsAt: Date, endsAt: Date, exceptId?: number): Promise<void> {
    await lock(tx, WINDOWS_LOCK);
    const where: SQL[] = [lt(maintenanceWindows.startsAt, endsAt), gt(maintenanceWindows.endsAt, startsAt)];
    if (exceptId !== undefined) where.push(ne(maintenanceWindows.id, exceptId));
    const [clash] = await tx.select({ id: maintenanceWindows.id }).from(maintenanceWindows).where(and(...where)).limit(1);
    if (clash) {
      throw new ProblemError('conflict', {
        detail: `The window overlaps window ${clash.id}; windows may not overlap.`,
        extensions: { conflictingWindowId: clash.id },
      });
    }
  }

  return {
    /** Everything the hot path needs: newest setting, newest freeze, windows not yet ended. */
    async loadSnapshot(q: DbOrTx = db): Promise<MaintenanceSnapshot> {
      // One after another: inside a transaction the queries share one connection.
      const setting = await newestSetting(q);
      const freeze = await newestFreeze(q);
      const windows = await q
        .select()
        .from(maintenanceWindows)
        .where(gt(maintenanceWindows.endsAt, new Date()))
        .orderBy(asc(maintenanceWindows.startsAt), asc(maintenanceWindows.id))
        .limit(CACHED_WINDOWS);
      return { setting, freeze, windows: windows.map(toWindow) };
    },

    newestSetting,
    newestFreeze,

    /** Takes the mode lock and returns the setting the change replaces. */
    async lockSetting(tx: DbOrTx): Promise<ModeSetting | null> {
      await lock(tx, STATE_LOCK);
      return newestSetting(tx);
    },

    async lockFreeze(tx: DbOrTx): Promise<FreezeSetting | null> {
      await lock(tx, FREEZE_LOCK);
      return newestFreeze(tx);
    },

    async insertSetting(tx: DbOrTx, s: NewSetting): Promise<ModeSetting> {
      const [row] = await tx
        .insert(maintenanceState)
        .values({ mode: s.mode, reason: s.reason, source: s.source, actorType: s.actor.type, actorId: s.actor.id, keyId: s.actor.keyId, since: s.since, until: s.until })
        .returning();
      return toSetting(row!);
    },

    async insertFreeze(tx: DbOrTx, f: NewFreeze): Promise<FreezeSetting> {
      const [row] = await tx
        .insert(maintenanceFreeze)
        .values({ enabled: f.enabled, reason: f.reason, source: f.source, actorType: f.actor.type, actorId: f.actor.id, keyId: f.actor.keyId, since: f.since, until: f.until })
        .returning();
      return toFreeze(row!);
    },

    /** Mode settings, newest first. */
    async history(filter: { cursor?: string; limit: number }): Promise<Page<HistoryItem>> {
      const before = decodeIdCursor(filter.cursor);
      const rows = await db
        .select()
        .from(maintenanceState)
        .where(before === undefined ? undefined : lt(maintenanceState.id, before))
        .orderBy(desc(maintenanceState.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], (r) => {
        const s = toSetting(r);
        return { id: s.id, mode: s.mode, reason: s.reason, source: s.source, actor: s.actor, since: s.since.toISOString(), until: iso(s.until) };
      });
    },

    /** Windows by id (oldest first), optionally only those upcoming, active or ended at `now`. */
    async listWindows(filter: WindowFilter & { limit: number }, now: Date): Promise<Page<WindowBody>> {
      const where: SQL[] = [];
      const afterId = decodeIdCursor(filter.cursor);
      if (afterId !== undefined) where.push(gt(maintenanceWindows.id, afterId));
      if (filter.status === 'upcoming') where.push(gt(maintenanceWindows.startsAt, now));
      if (filter.status === 'active') where.push(lte(maintenanceWindows.startsAt, now), gt(maintenanceWindows.endsAt, now));
      if (filter.status === 'ended') where.push(lte(maintenanceWindows.endsAt, now));
      const rows = await db
        .select()
        .from(maintenanceWindows)
        .where(where.length ? and(...where) : undefined)
        .orderBy(asc(maintenanceWindows.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], (r) => windowBody(toWindow(r), now.getTime()));
    },

    async windowById(id: number, q: DbOrTx = db): Promise<MaintenanceWindow | undefined> {
      const [row] = await q.select().from(maintenanceWindows).where(eq(maintenanceWindows.id, id)).limit(1);
      return row && toWindow(row);
    },

    async createWindow(tx: DbOrTx, input: CreateWindow, createdBy: string | null, now: number): Promise<MaintenanceWindow> {
      const startsAt = new Date(input.startsAt);
      const endsAt = new Date(input.endsAt);
      checkWindowTimes(startsAt, endsAt, now);
      await refuseOverlap(tx, startsAt, endsAt);
      const [row] = await tx.insert(maintenanceWindows).values({ mode: input.mode, reason: input.reason, startsAt, endsAt, createdBy, createdAt: new Date(now), updatedAt: new Date(now) }).returning();
      return toWindow(row!);
    },

    /** Undefined when there is no such window; 409 once it has ended (it is history then). */
    async updateWindow(tx: DbOrTx, id: number, patch: UpdateWindow, now: number): Promise<{ before: MaintenanceWindow; after: MaintenanceWindow } | undefined> {
      const [current] = await tx.select().from(maintenanceWindows).where(eq(maintenanceWindows.id, id)).for('update');
      if (!current) return undefined;
      const before = toWindow(current);
      if (before.endsAt.getTime() <= now) {
        throw new ProblemError('conflict', { detail: `Window ${id} has ended; an ended window cannot be changed.`, extensions: { currentState: 'ended' } });
      }
      const startsAt = patch.startsAt === undefined ? before.startsAt : new Date(patch.startsAt);
      const endsAt = patch.endsAt === undefined ? before.endsAt : new Date(patch.endsAt);
      checkWindowTimes(startsAt, endsAt, now);
      if (patch.startsAt !== undefined || patch.endsAt !== undefined) await refuseOverlap(tx, startsAt, endsAt, id);
      // A window moved back into the future has not started: its start is recorded again.
      const restarts = startsAt.getTime() > now;
      const [row] = await tx
        .update(maintenanceWindows)
        .set({
          mode: patch.mode ?? before.mode,
          reason: patch.reason ?? before.reason,
          startsAt,
          endsAt,
          ...(restarts ? { activatedAt: null } : {}),
          updatedAt: new Date(now),
        })
        .where(eq(maintenanceWindows.id, id))
        .returning();
      return { before, after: toWindow(row!) };
    },

    async removeWindow(tx: DbOrTx, id: number): Promise<MaintenanceWindow | undefined> {
      const [row] = await tx.delete(maintenanceWindows).where(eq(maintenanceWindows.id, id)).returning();
      return row && toWindow(row);
    },

    /** Windows that have started but whose start the sweep has not recorded. */
    async windowsToActivate(tx: DbOrTx, now: Date): Promise<MaintenanceWindow[]> {
      const rows = await tx
        .select()
        .from(maintenanceWindows)
        .where(and(lte(maintenanceWindows.startsAt, now), gt(maintenanceWindows.endsAt, now), isNull(maintenanceWindows.activatedAt)))
        .orderBy(asc(maintenanceWindows.startsAt))
        .limit(100)
        .for('update', { skipLocked: true });
      return rows.map(toWindow);
    },

    /** Windows that have ended but whose end the sweep has not recorded. */
    async windowsToComplete(tx: DbOrTx, now: Date): Promise<MaintenanceWindow[]> {
      const rows = await tx
        .select()
        .from(maintenanceWindows)
        .where(and(lte(maintenanceWindows.endsAt, now), isNull(maintenanceWindows.completedAt)))
        .orderBy(asc(maintenanceWindows.endsAt))
        .limit(100)
        .for('update', { skipLocked: true });
      return rows.map(toWindow);
    },

    async markWindow(tx: DbOrTx, id: number, stamp: { activatedAt?: Date; completedAt?: Date }): Promise<void> {
      await tx.update(maintenanceWindows).set(stamp).where(eq(maintenanceWindows.id, id));
    },
  };
}
export type MaintenanceService = ReturnType<typeof createMaintenanceService>;
