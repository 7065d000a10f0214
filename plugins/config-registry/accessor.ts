import { canonicalJson } from '../../src/audit/writer.js';
import { DEFAULT_ENVIRONMENT } from './schemas.js';
import type { ConfigRowValue } from './service.js';
import { deepFreeze } from './values.js';

/** environment → key → value, as loaded from `system_config`. */
export type ConfigSnapshot = ReadonlyMap<string, ReadonlyMap<string, unknown>>;

export type ConfigListener<T = unknown> = (value: T | undefined, previous: T | undefined) => void;

/**
 * How packs read configuration: `app.config.get('exports.max_rows')`. Memory only (never a
 * query), refreshed on every instance through the state cache's LISTEN/NOTIFY, so a change made
 * through any instance is seen everywhere within a second, without a restart.
 */
export interface ConfigAccessor {
  /** This instance's environment (`CONFIG_ENVIRONMENT`, default `default`). */
  readonly environment: string;
  /**
   * The effective value of `key`: the environment's entry, else the `default` one, else
   * undefined. Values are deeply frozen; `T` is the caller's promise, checked by the entry's type.
   */
  get<T = unknown>(key: string, environment?: string): T | undefined;
  has(key: string, environment?: string): boolean;
  /**
   * Calls `listener(value, previous)` after each reload that changes the effective value of
   * `key` (the first load at start included); returns the function that unsubscribes.
   */
  onChange<T = unknown>(key: string, listener: ConfigListener<T>, environment?: string): () => void;
  /** Entries per environment (the admin overview). */
  counts(): Record<string, number>;
}

interface Subscription {
  key: string;
  environment: string;
  listener: ConfigListener;
}

export function toSnapshot(rows: ReadonlyArray<ConfigRowValue>): ConfigSnapshot {
  const byEnvironment = new Map<string, Map<string, unknown>>();
  for (const row of rows) {
    let entries = byEnvironment.get(row.environment);
    if (!entries) byEnvironment.set(row.environment, (entries = new Map()));
    entries.set(row.key, deepFreeze(row.value));
  }
  return byEnvironment;
}

function lookup(snapshot: ConfigSnapshot, key: string, environment: string): { found: boolean; value: unknown } {
  const own = snapshot.get(environment);
  if (own?.has(key)) return { found: true, value: own.get(key) };
  const base = snapshot.get(DEFAULT_ENVIRONMENT);
  if (base?.has(key)) return { found: true, value: base.get(key) };
  return { found: false, value: undefined };
}

/**
 * The accessor and the `apply` its state-cache entry calls with each loaded snapshot. Listeners
 * run after the new snapshot is in place (a listener reading `get` sees the new value); one that
 * throws is reported to `onListenerError` and does not stop the others.
 */
export function createConfigAccessor(opts: { environment: string; onListenerError: (key: string, err: unknown) => void }) {
  let current: ConfigSnapshot = new Map();
  const subscriptions = new Set<Subscription>();

  const accessor: ConfigAccessor = {
    environment: opts.environment,
    get<T = unknown>(key: string, environment = opts.environment): T | undefined {
      return lookup(current, key, environment).value as T | undefined;
    },
    has: (key, environment = opts.environment) => lookup(current, key, environment).found,
    onChange<T = unknown>(key: string, listener: ConfigListener<T>, environment = opts.environment) {
      const subscription: Subscription = { key, environment, listener: (value, previous) => listener(value as T | undefined, previous as T | undefined) };
      subscriptions.add(subscription);
      return () => {
        subscriptions.delete(subscription);
      };
    },
    counts() {
      const out: Record<string, number> = {};
      for (const [environment, entries] of current) out[environment] = entries.size;
      return out;
    },
  };

  function apply(next: ConfigSnapshot): void {
    const previous = current;
    current = next;
    for (const s of [...subscriptions]) {
      const before = lookup(previous, s.key, s.environment);
      const after = lookup(next, s.key, s.environment);
      if (before.found === after.found && canonicalJson(before.value) === canonicalJson(after.value)) continue;
      try {
        s.listener(after.value, before.value);
      } catch (err) {
        opts.onListenerError(s.key, err);
      }
    }
  }

  return { accessor, apply };
}
