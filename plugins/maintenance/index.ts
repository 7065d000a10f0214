import { Gauge } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import type { DbOrTx } from '../../db/client.js';
import type { StateEntry } from '../../src/state-cache.js';
import { createMaintenanceClock, EMPTY_SNAPSHOT, evaluate, MODES, type ActorRef, type MaintenanceSnapshot, type MaintenanceView, type Mode } from './effective.js';
import { documentChangeFreeze, guardChangeFreeze } from './hooks.js';
import { createChangeEvents, createSweep, type ChangeEvents, type MaintenanceChangeListener, type SweepResult } from './jobs.js';
import { maintenanceRoutes } from './routes.js';
import { createMaintenanceService, settingJson, statusBody, type MaintenanceService } from './service.js';
import type { MaintenanceStatus } from './schemas.js';

export type { MaintenanceChange, MaintenanceChangeListener } from './jobs.js';
export type { MaintenanceView, Mode } from './effective.js';

/** What this pack offers other packs (the shield, the admin console, notifications). */
export interface Maintenance {
  service: MaintenanceService;
  entry: StateEntry<MaintenanceSnapshot>;
  /** The effective mode, windows and freeze now, from memory (the hot path: no query). */
  current(now?: number): MaintenanceView;
  /** `current()` as the JSON of `GET /system/maintenance`. */
  status(): MaintenanceStatus;
  events: ChangeEvents;
  /**
   * Called once across all instances for each change of the mode or the freeze, inside the
   * transaction that records it (an operator's request, or the sweep job for a window's start or
   * end and a passed `until`). The notifications pack (UG) subscribes here for `maintenance.changed`.
   */
  onChange(listener: MaintenanceChangeListener): void;
  /** Records passed untils and started/ended windows now (what the periodic job runs). */
  sweep(now?: Date): Promise<SweepResult>;
  /**
   * Sets the mode inside the caller's transaction, change event included, as
   * `POST /system/maintenance/state` does (the security action workflow uses it). The caller
   * records the audit entry and passes `entry` to `app.writeThrough({ refresh })`.
   */
  setMode(tx: DbOrTx, input: { mode: Mode; reason: string; actor: ActorRef; until: Date | null }, now?: number): Promise<{ before: ReturnType<typeof settingJson>; after: ReturnType<typeof settingJson> }>;
}

declare module 'fastify' {
  interface FastifyInstance {
    maintenance: Maintenance;
  }
}

/** The scopes this pack's routes require; API keys can hold them while the pack is loaded. */
const scopes = {
  'maintenance:read': 'Read the mode, scheduled windows and the change freeze',
  'maintenance:write': 'Change the mode, schedule windows, switch the change freeze',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * UE: maintenance mode, scheduled windows and the change freeze. The effective state is computed
 * in memory on every instance from one state-cache entry (so a window starts, and an `until`
 * ends, at that instant everywhere); a periodic sweep, on one instance at a time, persists those
 * switches (history rows, window stamps, audit entries, change events).
 */
export default definePack({
  name: 'maintenance',
  code: 'UE',
  description: 'Maintenance mode (normal, read-only, maintenance) with until, scheduled windows and the change freeze',
  scopes,
  dependencies: [],
  async register(app) {
    const service = createMaintenanceService({ db: app.db });
    const entry = app.stateCache.register('maintenance', () => service.loadSnapshot(), EMPTY_SNAPSHOT);
    const current = createMaintenanceClock(entry.get);
    const events = createChangeEvents();
    const sweep = createSweep({
      db: app.db,
      service,
      audit: app.audit,
      events,
      notify: (tx) => app.stateCache.notify(tx, entry.name),
      reload: () => entry.reload(),
    });
    app.decorate('maintenance', {
      service,
      entry,
      current,
      status: () => statusBody(current()),
      events,
      onChange: (listener: MaintenanceChangeListener) => events.on(listener),
      sweep,
      async setMode(tx: DbOrTx, input: { mode: Mode; reason: string; actor: ActorRef; until: Date | null }, now: number = Date.now()) {
        const before = await service.lockSetting(tx);
        const after = await service.insertSetting(tx, { ...input, source: 'manual', since: new Date(now) });
        await events.emit(tx, [{ kind: 'mode', cause: 'manual', windowId: null }], async () => evaluate(await service.loadSnapshot(tx), now));
        return { before: settingJson(before), after: settingJson(after) };
      },
    });

    app.jobs.definePeriodic({
      name: 'maintenance:sweep',
      intervalMs: app.env.MAINTENANCE_SWEEP_INTERVAL_MS,
      handler: async () => {
        await sweep();
      },
    });

    guardChangeFreeze(app, current);
    documentChangeFreeze(app);

    new Gauge({
      name: 'valhalla_maintenance_mode',
      help: 'Effective mode of this instance: 1 for the mode in force, 0 for the others',
      labelNames: ['mode'],
      registers: [app.metrics],
      collect() {
        const mode = current().effective.mode;
        for (const m of MODES) this.set({ mode: m }, m === mode ? 1 : 0);
      },
    });
    new Gauge({
      name: 'valhalla_maintenance_freeze',
      help: 'Change freeze in force on this instance (1) or not (0)',
      registers: [app.metrics],
      collect() {
        this.set(current().freeze.enabled ? 1 : 0);
      },
    });

    app.overview.add('maintenance', () => {
      const view = current();
      return {
        mode: view.effective.mode,
        source: view.effective.source,
        until: view.effective.until?.toISOString() ?? null,
        freeze: view.freeze.enabled,
        freezeUntil: view.freeze.until?.toISOString() ?? null,
        activeWindowId: view.activeWindow?.id ?? null,
        nextWindowStartsAt: view.nextWindow?.startsAt.toISOString() ?? null,
      };
    });
  },
  routes: async (app) => {
    await app.register(maintenanceRoutes(app.maintenance));
  },
});
