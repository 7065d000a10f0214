import { describe, expect, it } from 'vitest';
import { createMaintenanceClock, evaluate, nextChangeAfter, type MaintenanceSnapshot, type MaintenanceWindow, type ModeSetting } from './effective.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000);
const actor = { type: 'client', id: '1', keyId: 'k' };

const setting = (mode: ModeSetting['mode'], since: number, until: number | null = null, source: ModeSetting['source'] = 'manual'): ModeSetting => ({
  id: 1,
  mode,
  reason: `set ${mode}`,
  source,
  actor,
  since: at(since),
  until: until === null ? null : at(until),
});

const windowOf = (id: number, mode: MaintenanceWindow['mode'], start: number, end: number): MaintenanceWindow => ({
  id,
  mode,
  reason: `window ${id}`,
  startsAt: at(start),
  endsAt: at(end),
  createdBy: null,
  activatedAt: null,
  completedAt: null,
  createdAt: at(-100),
  updatedAt: at(-100),
});

const snap = (s: Partial<MaintenanceSnapshot>): MaintenanceSnapshot => ({ setting: null, freeze: null, windows: [], ...s });
const modeAt = (s: MaintenanceSnapshot, sec: number) => evaluate(s, T0 + sec * 1000).effective;

describe('effective mode (pure)', () => {
  it('is normal with nothing set, and the setting while its until has not passed', () => {
    expect(modeAt(snap({}), 0)).toMatchObject({ mode: 'normal', source: 'default' });
    const s = snap({ setting: setting('read_only', 0, 10) });
    expect(modeAt(s, 5)).toMatchObject({ mode: 'read_only', source: 'setting', until: at(10) });
    expect(modeAt(s, 10)).toMatchObject({ mode: 'normal', source: 'default' });
    // The setting itself reads as what the sweep will persist: normal since its until.
    expect(evaluate(s, T0 + 10_000).setting).toMatchObject({ mode: 'normal', source: 'expired', since: at(10), until: null, actor: { type: 'system' } });
  });

  it('lets a window in progress win over an older setting, and switches back at its end', () => {
    const s = snap({ setting: setting('read_only', 0), windows: [windowOf(7, 'maintenance', 10, 20)] });
    expect(modeAt(s, 9.999)).toMatchObject({ mode: 'read_only' });
    expect(modeAt(s, 10)).toMatchObject({ mode: 'maintenance', source: 'window', windowId: 7, until: at(20) });
    expect(modeAt(s, 20)).toMatchObject({ mode: 'read_only', source: 'setting' });
    expect(evaluate(s, T0 + 5000).nextWindow?.id).toBe(7);
    expect(evaluate(s, T0 + 15_000).activeWindow?.id).toBe(7);
  });

  it('lets a setting made during a window win over it (setting normal ends the window early)', () => {
    const s = snap({ setting: setting('normal', 12), windows: [windowOf(7, 'maintenance', 10, 20)] });
    expect(modeAt(s, 15)).toMatchObject({ mode: 'normal', source: 'setting' });
  });

  it('never lets an expired-until row override a window', () => {
    const s = snap({ setting: setting('normal', 15, null, 'expired'), windows: [windowOf(7, 'read_only', 10, 20)] });
    expect(modeAt(s, 16)).toMatchObject({ mode: 'read_only', source: 'window' });
  });

  it('ends a freeze at its until', () => {
    const s = snap({ freeze: { id: 1, enabled: true, reason: 'release', source: 'manual', actor, since: at(0), until: at(30) } });
    expect(evaluate(s, T0 + 29_000).freeze).toMatchObject({ enabled: true, until: at(30) });
    expect(evaluate(s, T0 + 30_000).freeze).toMatchObject({ enabled: false, source: 'expired', since: at(30) });
  });

  it('knows the next boundary, and the clock recomputes exactly there', () => {
    const s = snap({ setting: setting('read_only', 0, 50), windows: [windowOf(1, 'maintenance', 10, 20)] });
    expect(nextChangeAfter(s, T0)).toBe(T0 + 10_000);
    expect(nextChangeAfter(s, T0 + 10_000)).toBe(T0 + 20_000);
    expect(nextChangeAfter(s, T0 + 50_000)).toBe(Infinity);

    let current = s;
    const clock = createMaintenanceClock(() => current);
    const first = clock(T0 + 1000);
    expect(clock(T0 + 9000)).toBe(first); // same view object: nothing recomputed
    expect(clock(T0 + 10_000).effective.mode).toBe('maintenance');
    current = snap({});
    expect(clock(T0 + 10_001).effective.mode).toBe('normal'); // a new snapshot is seen at once
  });
});

describe('a window created or changed after the setting', () => {
  it('applies again even though its start is older than the setting', () => {
    const w = { ...windowOf(3, 'maintenance', -10, 100), updatedAt: at(5) };
    expect(modeAt(snap({ setting: setting('normal', 2), windows: [w] }), 6)).toMatchObject({ mode: 'maintenance', windowId: 3 });
    expect(modeAt(snap({ setting: setting('normal', 8), windows: [w] }), 9)).toMatchObject({ mode: 'normal', source: 'setting' });
  });
});
