/**
 * The effective mode and freeze, computed in memory from what the state cache holds: the newest
 * mode setting, the newest freeze setting and the windows that have not ended. A pure function of
 * (snapshot, now), so every instance switches at the instant a window starts or an `until`
 * passes, without waiting for the sweep job or a notification.
 *
 * Which source decides the mode (last writer wins):
 * - a window in progress decides, unless the operator set the mode *after* the window took
 *   effect (its start, or its last creation/change if later): setting `normal` during a window
 *   ends it early for everyone, and a window created or changed after that setting applies again;
 * - otherwise the operator's setting decides while its `until` has not passed;
 * - otherwise the mode is `normal`.
 * A setting written by the sweep job because an `until` passed (`source: 'expired'`) never
 * overrides a window.
 */

export const MODES = ['normal', 'read_only', 'maintenance'] as const;
export type Mode = (typeof MODES)[number];
export type WindowMode = Exclude<Mode, 'normal'>;

export interface ActorRef {
  type: string;
  id: string | null;
  keyId: string | null;
}

export const SYSTEM_ACTOR_REF: ActorRef = { type: 'system', id: 'maintenance', keyId: null };

/** One row of `maintenance_state`: the mode as set. */
export interface ModeSetting {
  id: number;
  mode: Mode;
  reason: string;
  source: 'manual' | 'expired';
  actor: ActorRef;
  since: Date;
  until: Date | null;
}

/** One row of `maintenance_freeze`. */
export interface FreezeSetting {
  id: number;
  enabled: boolean;
  reason: string;
  source: 'manual' | 'expired';
  actor: ActorRef;
  since: Date;
  until: Date | null;
}

export interface MaintenanceWindow {
  id: number;
  mode: WindowMode;
  reason: string;
  startsAt: Date;
  endsAt: Date;
  createdBy: string | null;
  activatedAt: Date | null;
  completedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What the state cache holds. `windows`: those not ended at load time, by start. */
export interface MaintenanceSnapshot {
  setting: ModeSetting | null;
  freeze: FreezeSetting | null;
  windows: MaintenanceWindow[];
}

export const EMPTY_SNAPSHOT: MaintenanceSnapshot = { setting: null, freeze: null, windows: [] };

/** The mode setting as it reads at `now` (an `until` that passed reads as `normal`). */
export interface SettingView {
  mode: Mode;
  reason: string | null;
  source: 'manual' | 'expired' | 'default';
  actor: ActorRef | null;
  since: Date | null;
  until: Date | null;
}

export interface EffectiveMode {
  mode: Mode;
  /** `setting`: the operator's setting; `window`: a scheduled window; `default`: nothing set. */
  source: 'setting' | 'window' | 'default';
  reason: string | null;
  since: Date | null;
  /** When this source stops deciding (the setting's `until` or the window's end), if known. */
  until: Date | null;
  windowId: number | null;
}

export interface FreezeView {
  enabled: boolean;
  reason: string | null;
  source: 'manual' | 'expired' | 'default';
  actor: ActorRef | null;
  since: Date | null;
  until: Date | null;
}

export interface MaintenanceView {
  /** When this view was computed (ms since the epoch). */
  at: number;
  setting: SettingView;
  effective: EffectiveMode;
  activeWindow: MaintenanceWindow | null;
  nextWindow: MaintenanceWindow | null;
  freeze: FreezeView;
}

const passed = (until: Date | null, now: number): until is Date => until !== null && until.getTime() <= now;

export function settingAt(setting: ModeSetting | null, now: number): SettingView {
  if (!setting) return { mode: 'normal', reason: null, source: 'default', actor: null, since: null, until: null };
  if (passed(setting.until, now)) return expiredSetting(setting);
  return { mode: setting.mode, reason: setting.reason, source: setting.source, actor: setting.actor, since: setting.since, until: setting.until };
}

/** What a setting whose `until` passed reads as; the sweep job persists exactly this. */
export function expiredSetting(setting: ModeSetting): SettingView & { since: Date } {
  const until = setting.until ?? setting.since;
  return {
    mode: 'normal',
    reason: `${setting.mode} ended at ${until.toISOString()} (its until): ${setting.reason}`.slice(0, 500),
    source: 'expired',
    actor: SYSTEM_ACTOR_REF,
    since: until,
    until: null,
  };
}

export function freezeAt(freeze: FreezeSetting | null, now: number): FreezeView {
  if (!freeze) return { enabled: false, reason: null, source: 'default', actor: null, since: null, until: null };
  if (freeze.enabled && passed(freeze.until, now)) return expiredFreeze(freeze);
  return { enabled: freeze.enabled, reason: freeze.reason, source: freeze.source, actor: freeze.actor, since: freeze.since, until: freeze.until };
}

export function expiredFreeze(freeze: FreezeSetting): FreezeView & { since: Date } {
  const until = freeze.until ?? freeze.since;
  return {
    enabled: false,
    reason: `freeze ended at ${until.toISOString()} (its until): ${freeze.reason}`.slice(0, 500),
    source: 'expired',
    actor: SYSTEM_ACTOR_REF,
    since: until,
    until: null,
  };
}

export function activeWindowAt(windows: readonly MaintenanceWindow[], now: number): MaintenanceWindow | null {
  let active: MaintenanceWindow | null = null;
  for (const w of windows) {
    if (w.startsAt.getTime() > now) break; // sorted by start
    if (w.endsAt.getTime() > now && (!active || w.startsAt >= active.startsAt)) active = w;
  }
  return active;
}

/** When a window began to decide: its start, or when it was created or last changed if that is later. */
const tookEffect = (w: MaintenanceWindow): Date => (w.updatedAt > w.startsAt ? w.updatedAt : w.startsAt);

export function evaluate(snapshot: MaintenanceSnapshot, now: number): MaintenanceView {
  const { setting, windows } = snapshot;
  const active = activeWindowAt(windows, now);
  const next = windows.find((w) => w.startsAt.getTime() > now) ?? null;
  const settingDecides = setting !== null && setting.source === 'manual' && !passed(setting.until, now);

  let effective: EffectiveMode;
  if (active && !(settingDecides && setting.since > tookEffect(active))) {
    effective = { mode: active.mode, source: 'window', reason: active.reason, since: active.startsAt, until: active.endsAt, windowId: active.id };
  } else if (settingDecides) {
    effective = { mode: setting.mode, source: 'setting', reason: setting.reason, since: setting.since, until: setting.until, windowId: null };
  } else {
    effective = { mode: 'normal', source: 'default', reason: null, since: null, until: null, windowId: null };
  }
  return { at: now, setting: settingAt(setting, now), effective, activeWindow: active, nextWindow: next, freeze: freezeAt(snapshot.freeze, now) };
}

/** The next instant after `now` at which `evaluate` can answer differently for this snapshot. */
export function nextChangeAfter(snapshot: MaintenanceSnapshot, now: number): number {
  let next = Infinity;
  const consider = (d: Date | null | undefined) => {
    const t = d?.getTime();
    if (t !== undefined && t > now && t < next) next = t;
  };
  consider(snapshot.setting?.until);
  consider(snapshot.freeze?.until);
  for (const w of snapshot.windows) {
    consider(w.startsAt);
    consider(w.endsAt);
  }
  return next;
}

/**
 * The view for the hot path: recomputed only when the snapshot changes or a boundary (a window's
 * start or end, an `until`) is reached, so a request costs one clock read and two comparisons.
 */
export function createMaintenanceClock(snapshot: () => MaintenanceSnapshot) {
  let cachedFor: MaintenanceSnapshot | undefined;
  let view: MaintenanceView | undefined;
  let validFrom = 0;
  let validUntil = -Infinity;
  return (now: number = Date.now()): MaintenanceView => {
    const current = snapshot();
    if (view === undefined || current !== cachedFor || now >= validUntil || now < validFrom) {
      view = evaluate(current, now);
      cachedFor = current;
      validFrom = now;
      validUntil = nextChangeAfter(current, now);
    }
    return view;
  };
}
