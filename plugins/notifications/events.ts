/**
 * Event types the packs emit are reserved: `POST /system/notify` refuses a manual event in the
 * namespace (the first dotted segment) of any of them, so a `notify:write` key cannot send a
 * signed `freeze.changed` identical to the real one. A receiver can trust every type in those
 * namespaces to come from the kernel.
 */
export interface EventRegistry {
  /** Declares event types a pack emits (at registration): their namespaces become reserved. */
  reserve(types: readonly string[]): void;
  /** Reserves one type only (one a pack enqueued without declaring it). */
  reserveType(type: string): void;
  /** The reserved pattern `type` falls under (`freeze.*`, or an exact type), or null when a manual event may use it. */
  reservedPatternOf(type: string): string | null;
  /** Reserved patterns, sorted (for problems and docs). */
  patterns(): string[];
}

/**
 * What the packs of this repository emit today. Listed here as well as declared by the packs that
 * can (`app.notifications.reserveEvents`), so a namespace is reserved from the start even before
 * its pack's first event; `notify.test` is the channel test delivery.
 */
export const KERNEL_EVENT_TYPES = ['maintenance.changed', 'freeze.changed', 'smoke.failed', 'export.finished', 'security.honeypot_hit', 'notify.test'] as const;

const namespaceOf = (type: string) => type.split('.', 1)[0]!;

export function createEventRegistry(initial: readonly string[] = KERNEL_EVENT_TYPES): EventRegistry {
  const namespaces = new Set<string>();
  const exact = new Set<string>();
  const registry: EventRegistry = {
    reserve(types) {
      for (const t of types) namespaces.add(namespaceOf(t));
    },
    reserveType: (type) => void exact.add(type),
    reservedPatternOf(type) {
      const ns = namespaceOf(type);
      if (namespaces.has(ns)) return `${ns}.*`;
      return exact.has(type) ? type : null;
    },
    patterns: () => [...[...namespaces].map((n) => `${n}.*`), ...exact].sort(),
  };
  registry.reserve(initial);
  return registry;
}
