import type { DbOrTx } from '../../db/client.js';
import type { Actor } from '../../src/audit/writer.js';
import type { StateEntry } from '../../src/state-cache.js';
import type { AuditDescription, WriteThrough } from '../../src/write-through.js';
import { evaluate, expiredFreeze, expiredSetting, SYSTEM_ACTOR_REF, type MaintenanceView } from './effective.js';
import { freezeJson, settingJson, windowBody, type MaintenanceService } from './service.js';

/** Who the sweep's audit entries and settings name. */
export const SWEEP_ACTOR: Actor = { type: 'system', id: SYSTEM_ACTOR_REF.id, keyId: null };

export type ChangeCause = 'manual' | 'until-expired' | 'window-start' | 'window-end' | 'window-changed';

/**
 * A change of the mode or the freeze, told once across all instances, inside the transaction of
 * the write that made it (the operator's request, or the sweep job that records a window's start
 * or end or a passed `until`): the notifications pack (UG) can enqueue its outbox rows in it.
 */
export interface MaintenanceChange {
  kind: 'mode' | 'freeze';
  cause: ChangeCause;
  windowId: number | null;
  /** Mode, windows and freeze right after the change. */
  view: MaintenanceView;
}

export type MaintenanceChangeListener = (change: MaintenanceChange, tx: DbOrTx) => Promise<void> | void;

export interface ChangeEvents {
  on(listener: MaintenanceChangeListener): void;
  readonly listening: boolean;
  /** Tells every listener, in order; a listener that throws rolls the change back. */
  emit(tx: DbOrTx, changes: ReadonlyArray<Omit<MaintenanceChange, 'view'>>, view: () => Promise<MaintenanceView>): Promise<void>;
}

export function createChangeEvents(): ChangeEvents {
  const listeners: MaintenanceChangeListener[] = [];
  return {
    on: (listener) => void listeners.push(listener),
    get listening() {
      return listeners.length > 0;
    },
    async emit(tx, changes, view) {
      if (listeners.length === 0 || changes.length === 0) return;
      const after = await view();
      for (const change of changes) {
        for (const listener of listeners) await listener({ ...change, view: after }, tx);
      }
    },
  };
}

export interface SweepResult {
  modeExpired: boolean;
  freezeExpired: boolean;
  activated: number[];
  completed: number[];
}

export interface SweepDeps {
  writeThrough: WriteThrough;
  service: MaintenanceService;
  events: ChangeEvents;
  /** The state entry a recorded switch refreshes (notified in the sweep's transaction, reloaded after). */
  entry: Pick<StateEntry<unknown>, 'name' | 'reload'>;
}

/**
 * Persists what the clock already decided in memory: a setting whose `until` passed becomes a
 * `normal` row, an expired freeze an `enabled: false` row, and each window's start and end is
 * stamped and audited. Idempotent (row locks and `IS NULL` stamps), so a second sweeper or a
 * rerun after a crash records nothing twice.
 */
export function createSweep(deps: SweepDeps) {
  const { writeThrough, service, events, entry } = deps;
  // A sweep that records nothing says so (`changed: false`): writeThrough then notifies and reloads nothing.
  return (now: Date = new Date()): Promise<SweepResult> =>
    writeThrough(null, { refresh: [entry] }, async (tx) => {
      const result: SweepResult = { modeExpired: false, freezeExpired: false, activated: [], completed: [] };
      const changes: Array<Omit<MaintenanceChange, 'view'>> = [];
      const audit: AuditDescription[] = [];

      const setting = await service.lockSetting(tx);
      if (setting && setting.source === 'manual' && setting.until && setting.until <= now) {
        const expired = expiredSetting(setting);
        const after = await service.insertSetting(tx, { mode: 'normal', reason: expired.reason ?? '', source: 'expired', actor: SYSTEM_ACTOR_REF, since: expired.since, until: null });
        audit.push({ actor: SWEEP_ACTOR, operation: 'maintenance.state.expire', targetType: 'maintenance', targetId: 'mode', reason: 'until passed', before: settingJson(setting), after: settingJson(after) });
        changes.push({ kind: 'mode', cause: 'until-expired', windowId: null });
        result.modeExpired = true;
      }

      const freeze = await service.lockFreeze(tx);
      if (freeze && freeze.enabled && freeze.until && freeze.until <= now) {
        const expired = expiredFreeze(freeze);
        const after = await service.insertFreeze(tx, { enabled: false, reason: expired.reason ?? '', source: 'expired', actor: SYSTEM_ACTOR_REF, since: expired.since, until: null });
        audit.push({ actor: SWEEP_ACTOR, operation: 'maintenance.freeze.expire', targetType: 'maintenance', targetId: 'freeze', reason: 'until passed', before: freezeJson(freeze), after: freezeJson(after) });
        changes.push({ kind: 'freeze', cause: 'until-expired', windowId: null });
        result.freezeExpired = true;
      }

      for (const w of await service.windowsToActivate(tx, now)) {
        await service.markWindow(tx, w.id, { activatedAt: now });
        audit.push({ actor: SWEEP_ACTOR, operation: 'maintenance.window.activate', targetType: 'maintenance-window', targetId: w.id, reason: w.reason, after: windowBody({ ...w, activatedAt: now }, now.getTime()) });
        changes.push({ kind: 'mode', cause: 'window-start', windowId: w.id });
        result.activated.push(w.id);
      }
      for (const w of await service.windowsToComplete(tx, now)) {
        await service.markWindow(tx, w.id, { completedAt: now });
        audit.push({ actor: SWEEP_ACTOR, operation: 'maintenance.window.complete', targetType: 'maintenance-window', targetId: w.id, reason: w.reason, after: windowBody({ ...w, completedAt: now }, now.getTime()) });
        changes.push({ kind: 'mode', cause: 'window-end', windowId: w.id });
        result.completed.push(w.id);
      }

      await events.emit(tx, changes, async () => evaluate(await service.loadSnapshot(tx), now.getTime()));
      return { result, audit, changed: audit.length > 0 };
    });
}
