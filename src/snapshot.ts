import type { TSchema } from '@sinclair/typebox';
import type { DbOrTx } from '../db/client.js';
import { canonicalJson } from './audit/writer.js';

/**
 * Control-plane state that a snapshot carries (flags, channels, retention policies, ...): each
 * pack describes its section here, so a snapshot export and `POST /system/imports` never reach
 * into a pack's tables. Items are portable: no ids, timestamps or secrets, identified by a key.
 */
export type SnapshotItem = Record<string, unknown>;

export interface SnapshotPlan {
  create: SnapshotItem[];
  update: SnapshotItem[];
  /** Keys of current items the snapshot does not have. */
  remove: string[];
}

/** Who imports: for packs that keep their own change history (the config registry). */
export interface ImportContext {
  actor: string;
  correlationId: string | null;
}

export interface SnapshotSection {
  /** `feature_flags`, `notification_channels`, ... */
  name: string;
  description: string;
  /** One imported item's shape (TypeBox; unknown fields refused). */
  itemSchema: TSchema;
  keyOf(item: SnapshotItem): string;
  /** Every current item, portable. */
  read(): Promise<SnapshotItem[]>;
  /**
   * Makes the section equal to the snapshot inside `tx` (the import's one transaction), through
   * the pack's own validated writes; tells the state cache when the section is hot-path state.
   */
  apply(tx: DbOrTx, plan: SnapshotPlan, ctx: ImportContext): Promise<void>;
  /** After the commit: reload this instance's in-memory copy (others follow the notification). */
  afterCommit?(): Promise<void>;
}

export interface SnapshotRegistry {
  section(def: SnapshotSection): void;
  get(name: string): SnapshotSection | undefined;
  list(): readonly SnapshotSection[];
}

export function createSnapshotRegistry(): SnapshotRegistry {
  const sections = new Map<string, SnapshotSection>();
  return {
    section(def) {
      if (!/^[a-z][a-z0-9_]{0,62}$/.test(def.name)) throw new Error(`snapshot section '${def.name}' must be snake_case`);
      if (sections.has(def.name)) throw new Error(`snapshot section '${def.name}' is registered twice`);
      sections.set(def.name, def);
    },
    get: (name) => sections.get(name),
    list: () => [...sections.values()].sort((a, b) => a.name.localeCompare(b.name)),
  };
}

export interface SectionDiff extends SnapshotPlan {
  unchanged: number;
}

/** What importing `wanted` over `current` changes, by key; items compare as canonical JSON. */
export function diffSection(section: Pick<SnapshotSection, 'keyOf'>, current: readonly SnapshotItem[], wanted: readonly SnapshotItem[]): SectionDiff {
  const now = new Map(current.map((i) => [section.keyOf(i), i]));
  const next = new Map(wanted.map((i) => [section.keyOf(i), i]));
  const diff: SectionDiff = { create: [], update: [], remove: [], unchanged: 0 };
  for (const [key, item] of next) {
    const existing = now.get(key);
    if (!existing) diff.create.push(item);
    else if (canonicalJson(existing) !== canonicalJson(item)) diff.update.push(item);
    else diff.unchanged++;
  }
  for (const key of now.keys()) if (!next.has(key)) diff.remove.push(key);
  return diff;
}
