import { and, asc, count, desc, eq, gt, gte, inArray, isNull, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db, type DbOrTx } from '../../db/client.js';
import { bulkInsert } from '../../db/bulk-insert.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique, ProblemError } from '../../src/problem.js';
import { apiClients } from '../api-keys/table.js';
import { canonicalAddress, canonicalCidr, parseCidr } from '../../src/ip-address.js';
import { BlocklistMatcher, type ActiveRule, type PolicyMode, type RuleType } from './matcher.js';
import { isGlob, normalisePath } from './patterns.js';
import type { CreatePolicy, CreateRule, Incident, IncidentFilter, Policy, Rule, RuleFilter, UpdatePolicy, UpdateRule } from './schemas.js';
import { blocklistRules, securityEventRollups, securityIncidents, securityPolicies } from './table.js';
import type { BlockAddressInput, BlockedAddress, BlocklistFigures, RuleSeverity, SecurityIncidentInput } from './types.js';

type RuleRow = typeof blocklistRules.$inferSelect;
type PolicyRow = typeof securityPolicies.$inferSelect;
type IncidentRow = typeof securityIncidents.$inferSelect;
export type RollupRow = typeof securityEventRollups.$inferInsert;

/** The policy automatic blocks go into unless the caller names one; created at start. */
export const AUTOMATIC_POLICY = 'automatic';

/** What the state cache holds: the matcher, and the policies by id (names for reports). */
export interface BlocklistState {
  matcher: BlocklistMatcher;
  policies: ReadonlyMap<number, { name: string; enabled: boolean; mode: PolicyMode }>;
  /** Rows loaded and milliseconds the last full load and build took (the bench and /system/admin report them). */
  loadedRules: number;
  loadMs: number;
  /** What the tables looked like when loaded (see `loadState`), and when. */
  fingerprint: string;
  loadedAt: number;
}

export const EMPTY_STATE: BlocklistState = { matcher: new BlocklistMatcher([]), policies: new Map(), loadedRules: 0, loadMs: 0, fingerprint: '', loadedAt: 0 };

/**
 * A copy of `text` that does not point into the string it was cut from. V8 keeps a slice of 13
 * characters or more as a view of its parent, so the rules' values would keep the whole dump of
 * the rules (~5 MiB for 100,000) alive for as long as the state holds them.
 */
function detached(text: string): string {
  return text.length < 13 ? text : Buffer.from(text, 'utf8').toString('utf8');
}

/** Even with no change seen, the rules are read again this often (expired ones then leave memory). */
const FULL_LOAD_EVERY_MS = 10 * 60_000;

export interface EscalationPolicy {
  /** Repeat offences of the same origin within this many seconds double the TTL. */
  lookbackSeconds: number;
  /** The longest TTL doubling may reach. */
  maxTtlSeconds: number;
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

function toRule(row: RuleRow, policyEnabled: boolean, now = Date.now()): Rule {
  return {
    id: row.id,
    policyId: row.policyId,
    type: row.type,
    action: row.action,
    value: row.value,
    severity: row.severity,
    reason: row.reason,
    origin: row.origin,
    expiresAt: iso(row.expiresAt),
    active: policyEnabled && (row.expiresAt === null || row.expiresAt.getTime() > now),
    offences: row.offences,
    lastOffenceAt: row.lastOffenceAt.toISOString(),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

const toIncident = (row: IncidentRow): Incident => ({
  id: row.id,
  kind: row.kind,
  severity: row.severity,
  sourceIp: row.sourceIp,
  summary: row.summary,
  details: row.details,
  ruleId: row.ruleId,
  createdAt: row.createdAt.toISOString(),
});

/** A 400 naming the field, as the schema validator would. */
export const invalidField = (pointer: string, message: string, where: 'body' | 'querystring' = 'body'): ProblemError =>
  new ProblemError('validation-failed', { detail: 'The request does not match the schema.', errors: [{ in: where, pointer: `#${pointer}`, message }] });

/**
 * The canonical stored value of a rule, or why it is invalid: addresses and networks in one
 * spelling (so `::ffff:10.0.0.1`, `10.0.0.1` and ` 10.0.0.1 ` are one rule), prefix paths
 * normalised like requests (so a rule on `/a/../admin` is a rule on `/admin`).
 */
export function normaliseRuleValue(type: RuleType, raw: string): { value: string } | { error: string } {
  const value = raw.trim();
  // Control characters never occur in a header or path the server accepts; a rule with one is a mistake.
  if (value.length === 0 || /[\u0000-\u001f\u007f]/.test(value)) return { error: 'must be non-empty printable text' };
  switch (type) {
    case 'ip': {
      const canonical = canonicalAddress(value);
      return canonical ? { value: canonical } : { error: 'is not a valid IPv4 or IPv6 address' };
    }
    case 'cidr': {
      const cidr = parseCidr(value);
      return 'error' in cidr ? { error: cidr.error } : { value: canonicalCidr(cidr) };
    }
    case 'user_agent':
      return { value };
    case 'path':
      if (value[0] !== '/' && value[0] !== '*') return { error: "must start with '/' (a prefix) or be a glob starting with '/' or '*'" };
      return { value: isGlob(value) ? value : normalisePath(value) };
    case 'api_client':
      return /^[1-9][0-9]{0,15}$/.test(value) && Number.isSafeInteger(Number(value)) ? { value } : { error: 'must be an API client id (a positive integer)' };
  }
}

/** An address or network for blockAddress/unblockAddress: `ip` or `cidr` with its canonical value. */
export function addressRule(address: string): { type: 'ip' | 'cidr'; value: string } | { error: string } {
  const type = address.includes('/') ? 'cidr' : 'ip';
  const v = normaliseRuleValue(type, address);
  return 'error' in v ? v : { type, value: v.value };
}

/**
 * Policies, rules, incidents and the event roll-ups, without HTTP: reads take the pool, writes
 * the caller's transaction (so the audit entry and the state notification share it).
 */
export function createBlocklistService(deps: { db: Db; escalation: EscalationPolicy }) {
  const { db } = deps;

  async function policyOrThrow(tx: DbOrTx, id: number, pointer: string): Promise<PolicyRow> {
    const [row] = await tx.select().from(securityPolicies).where(eq(securityPolicies.id, id)).limit(1);
    if (!row) throw invalidField(pointer, `no security policy ${id}`);
    return row;
  }

  async function policyEnabledMap(tx: DbOrTx, ids: Array<number | null>): Promise<Map<number, boolean>> {
    const wanted = [...new Set(ids.filter((id): id is number => id !== null))];
    if (wanted.length === 0) return new Map();
    const rows = await tx.select({ id: securityPolicies.id, enabled: securityPolicies.enabled }).from(securityPolicies).where(inArray(securityPolicies.id, wanted));
    return new Map(rows.map((r) => [r.id, r.enabled]));
  }

  async function toRules(tx: DbOrTx, rows: RuleRow[]): Promise<Rule[]> {
    const enabled = await policyEnabledMap(tx, rows.map((r) => r.policyId));
    const now = Date.now();
    return rows.map((r) => toRule(r, r.policyId === null || (enabled.get(r.policyId) ?? false), now));
  }

  async function automaticPolicyId(tx: DbOrTx): Promise<number> {
    const [row] = await tx.select({ id: securityPolicies.id }).from(securityPolicies).where(eq(securityPolicies.name, AUTOMATIC_POLICY)).limit(1);
    if (row) return row.id;
    const [created] = await tx
      .insert(securityPolicies)
      .values({ name: AUTOMATIC_POLICY, description: 'Blocks made by the kernel and the security packs (escalations, honeypots, actions)', mode: 'enforce' })
      .onConflictDoNothing()
      .returning({ id: securityPolicies.id });
    if (created) return created.id;
    return automaticPolicyId(tx);
  }

  /** Validates and canonicalises a create body; `at` prefixes the pointer (`/rules/17`). */
  function prepare(input: CreateRule, at: string): typeof blocklistRules.$inferInsert {
    const v = normaliseRuleValue(input.type, input.value);
    if ('error' in v) throw invalidField(`${at}/value`, v.error);
    if (input.ttlSeconds !== undefined && input.expiresAt !== undefined) throw invalidField(`${at}/ttlSeconds`, 'give expiresAt or ttlSeconds, not both');
    const expiresAt = input.ttlSeconds !== undefined ? new Date(Date.now() + input.ttlSeconds * 1000) : input.expiresAt ? new Date(input.expiresAt) : null;
    if (input.ttlSeconds === undefined && expiresAt !== null && expiresAt.getTime() <= Date.now()) throw invalidField(`${at}/expiresAt`, 'must be in the future (a rule that never matches is a mistake)');
    return {
      type: input.type,
      value: v.value,
      action: input.action ?? 'block',
      severity: input.severity ?? 'medium',
      reason: input.reason ?? '',
      origin: input.origin ?? 'manual',
      policyId: input.policyId ?? null,
      expiresAt,
    };
  }

  /** `api_client` rules must name a client that exists (400 naming the rule's `value`). */
  async function clientsOrThrow(tx: DbOrTx, rows: ReadonlyArray<{ type: string; value: string }>, at: (i: number) => string): Promise<void> {
    const wanted = [...new Set(rows.filter((r) => r.type === 'api_client').map((r) => Number(r.value)))];
    if (wanted.length === 0) return;
    const found = new Set<number>();
    for (let i = 0; i < wanted.length; i += 1000) {
      const chunk = await tx.select({ id: apiClients.id }).from(apiClients).where(inArray(apiClients.id, wanted.slice(i, i + 1000)));
      for (const r of chunk) found.add(r.id);
    }
    const missing = rows.findIndex((r) => r.type === 'api_client' && !found.has(Number(r.value)));
    if (missing !== -1) throw invalidField(`${at(missing)}/value`, `no API client ${rows[missing]!.value}`);
  }

  const duplicateRule = (type: string, value: string) =>
    conflictOnUnique(`A rule of type '${type}' for '${value}' with this action already exists in this policy.`, { type, value });

  return {
    // ---- state ---------------------------------------------------------------------------

    /**
     * Every rule that can still match, with its policy's mode, compiled for the hot path. A
     * change is announced by its writer and heard by every instance, the writer included, and
     * the periodic reload runs whether anything changed or not: a fingerprint of both tables
     * (row counts, highest id, sum of update times: any write changes one of them, whatever the
     * writers' clocks) is read first, and the last state kept when it is
     * unchanged, so only real changes pay for reading and compiling 100,000 rules. A full
     * load still happens every FULL_LOAD_EVERY_MS to drop rules that expired meanwhile.
     */
    async loadState(previous?: BlocklistState): Promise<BlocklistState> {
      const started = performance.now();
      const [print] = await queryRows<{ fingerprint: string }>(
        db,
        // One pass over each table (three separate aggregates were three scans of 100,000 rows).
        sql`select concat_ws('|', r.n, r.top, r.stamp, p.n, p.top, p.stamp) as fingerprint
          from (select count(*) as n, max(${blocklistRules.id}) as top, sum(extract(epoch from ${blocklistRules.updatedAt})) as stamp from ${blocklistRules}) r,
               (select count(*) as n, max(${securityPolicies.id}) as top, sum(extract(epoch from ${securityPolicies.updatedAt})) as stamp from ${securityPolicies}) p`,
      );
      const fingerprint = print?.fingerprint ?? '';
      if (previous && previous.fingerprint === fingerprint && Date.now() - previous.loadedAt < FULL_LOAD_EVERY_MS) return previous;

      const policies = await db.select().from(securityPolicies);
      const byId = new Map(policies.map((p) => [p.id, { name: p.name, enabled: p.enabled, mode: p.mode }]));
      // Every rule as one line of one text value, split here: for 100,000 rules this is several
      // times faster than the driver parsing 100,000 rows of eight columns (measured ~100 ms
      // against 300-800 ms on PostgreSQL), and this runs on every instance after every change.
      // The value goes last, so commas in it need no escaping; values hold no control characters
      // (`normaliseRuleValue`), so the newline separates rules.
      const [dump] = await queryRows<{ rules: string | null }>(
        db,
        sql`select string_agg(concat_ws(',', ${blocklistRules.id}, coalesce(${blocklistRules.policyId}, 0), ${blocklistRules.type}, ${blocklistRules.action}, ${blocklistRules.severity},
          ${blocklistRules.origin}, coalesce((extract(epoch from ${blocklistRules.expiresAt}) * 1000)::bigint, 0), ${blocklistRules.value}), E'\n') as rules
          from ${blocklistRules} where ${blocklistRules.expiresAt} is null or ${blocklistRules.expiresAt} > now()`,
      );
      const active: ActiveRule[] = [];
      let loaded = 0;
      // Each slice of the dump is a new string: type, action, severity and origin (a handful of
      // words) are shared through this map instead of held once per rule (~9 MiB for 100,000).
      const words = new Map<string, string>();
      const shared = (word: string): string => {
        const known = words.get(word);
        if (known !== undefined) return known;
        words.set(word, word);
        return word;
      };
      for (const line of dump?.rules ? dump.rules.split('\n') : []) {
        loaded++;
        const f: string[] = [];
        let at = 0;
        for (let k = 0; k < 7; k++) {
          const comma = line.indexOf(',', at);
          f.push(k >= 2 && k <= 5 ? shared(line.slice(at, comma)) : line.slice(at, comma));
          at = comma + 1;
        }
        const policyId = f[1] === '0' ? null : Number(f[1]);
        const policy = policyId === null ? null : byId.get(policyId);
        if (policy === undefined || (policy !== null && !policy.enabled)) continue;
        const expires = Number(f[6]);
        active.push({
          id: Number(f[0]),
          type: f[2] as RuleType,
          action: f[3] as ActiveRule['action'],
          severity: f[4] as RuleSeverity,
          origin: f[5]!,
          value: detached(line.slice(at)),
          policyId,
          policyName: policy?.name ?? null,
          mode: policy?.mode ?? 'enforce',
          expiresAt: expires === 0 ? Infinity : expires,
        });
      }
      const matcher = await BlocklistMatcher.build(active);
      return { matcher, policies: byId, loadedRules: loaded, loadMs: performance.now() - started, fingerprint, loadedAt: Date.now() };
    },

    async ensureAutomaticPolicy(): Promise<number> {
      return automaticPolicyId(db);
    },

    // ---- policies ------------------------------------------------------------------------

    async listPolicies(filter: { limit: number; cursor?: string }): Promise<Page<Policy>> {
      const afterId = decodeIdCursor(filter.cursor);
      const rows = await db
        .select()
        .from(securityPolicies)
        .where(afterId === undefined ? undefined : gt(securityPolicies.id, afterId))
        .orderBy(asc(securityPolicies.id))
        .limit(filter.limit + 1);
      const counts = await activeRuleCounts(db, rows.map((r) => r.id));
      return toPage(rows, filter.limit, (r) => [r.id], (r) => toPolicy(r, counts.get(r.id) ?? 0));
    },

    async policyById(id: number, tx: DbOrTx = db): Promise<Policy | undefined> {
      const [row] = await tx.select().from(securityPolicies).where(eq(securityPolicies.id, id)).limit(1);
      if (!row) return undefined;
      return toPolicy(row, (await activeRuleCounts(tx, [id])).get(id) ?? 0);
    },

    async createPolicy(tx: DbOrTx, input: CreatePolicy): Promise<Policy> {
      const [row] = await tx
        .insert(securityPolicies)
        .values({ name: input.name, description: input.description ?? '', enabled: input.enabled ?? true, mode: input.mode ?? 'enforce' })
        .returning()
        .catch(conflictOnUnique(`A security policy named '${input.name}' already exists.`, { name: input.name }));
      return toPolicy(row!, 0);
    },

    /** `guard` sees the locked row first and may refuse the change (the built-in policy's protection). */
    async updatePolicy(tx: DbOrTx, id: number, patch: Omit<UpdatePolicy, 'reason'>, guard?: (current: PolicyRow) => void): Promise<{ before: Policy; after: Policy } | undefined> {
      const [current] = await tx.select().from(securityPolicies).where(eq(securityPolicies.id, id)).for('update');
      if (!current) return undefined;
      guard?.(current);
      const [row] = await tx
        .update(securityPolicies)
        .set({ ...patch, updatedAt: new Date() })
        .where(eq(securityPolicies.id, id))
        .returning()
        .catch(conflictOnUnique(`A security policy named '${patch.name ?? current.name}' already exists.`, { name: patch.name ?? current.name }));
      const n = (await activeRuleCounts(tx, [id])).get(id) ?? 0;
      return { before: toPolicy(current, n), after: toPolicy(row!, n) };
    },

    /** Deletes the policy and its rules (cascade); returns it with how many rules went. */
    async removePolicy(tx: DbOrTx, id: number, guard?: (current: PolicyRow) => void): Promise<{ policy: Policy; rulesRemoved: number } | undefined> {
      const [current] = await tx.select().from(securityPolicies).where(eq(securityPolicies.id, id)).for('update');
      if (!current) return undefined;
      guard?.(current);
      const [n] = await tx.select({ n: count() }).from(blocklistRules).where(eq(blocklistRules.policyId, id));
      await tx.delete(securityPolicies).where(eq(securityPolicies.id, id));
      return { policy: toPolicy(current, 0), rulesRemoved: n?.n ?? 0 };
    },

    // ---- rules ---------------------------------------------------------------------------

    /** Newest first; keyset on id. */
    async listRules(filter: RuleFilter & { limit: number }): Promise<Page<Rule>> {
      const where: SQL[] = [];
      if (filter.type) where.push(eq(blocklistRules.type, filter.type));
      if (filter.action) where.push(eq(blocklistRules.action, filter.action));
      if (filter.origin) where.push(eq(blocklistRules.origin, filter.origin));
      if (filter.policyId !== undefined) where.push(eq(blocklistRules.policyId, filter.policyId));
      if (filter.value !== undefined) {
        // Canonical like stored values: `2001:DB8::/32` finds `2001:db8::/32`.
        const v = filter.type ? normaliseRuleValue(filter.type, filter.value) : addressRule(filter.value);
        const canonical = 'value' in v ? v.value : filter.value.trim();
        where.push(eq(blocklistRules.value, canonical));
      }
      if (filter.active === true) where.push(or(isNull(blocklistRules.expiresAt), gt(blocklistRules.expiresAt, sql`now()`))!);
      if (filter.active === false) where.push(lte(blocklistRules.expiresAt, sql`now()`));
      const beforeId = decodeIdCursor(filter.cursor);
      if (beforeId !== undefined) where.push(lt(blocklistRules.id, beforeId));
      const rows = await db
        .select()
        .from(blocklistRules)
        .where(where.length ? and(...where) : undefined)
        .orderBy(desc(blocklistRules.id))
        .limit(filter.limit + 1);
      const page = toPage(rows, filter.limit, (r) => [r.id], (r) => r);
      return { items: await toRules(db, page.items), nextCursor: page.nextCursor };
    },

    async ruleById(id: number, tx: DbOrTx = db): Promise<Rule | undefined> {
      const [row] = await tx.select().from(blocklistRules).where(eq(blocklistRules.id, id)).limit(1);
      return row && (await toRules(tx, [row]))[0];
    },

    async createRule(tx: DbOrTx, input: CreateRule): Promise<Rule> {
      const values = prepare(input, '');
      if (values.policyId != null) await policyOrThrow(tx, values.policyId, '/policyId');
      await clientsOrThrow(tx, [values], () => '');
      const [row] = await tx.insert(blocklistRules).values(values).returning().catch(duplicateRule(values.type, values.value));
      return (await toRules(tx, [row!]))[0]!;
    },

    /**
     * All or nothing: every rule is validated first (a bad one is a 400 naming `/rules/<i>/...`),
     * then inserted in one statement per chunk inside the caller's transaction, so a duplicate
     * anywhere rolls back the whole import.
     */
    async createRules(tx: DbOrTx, inputs: CreateRule[]): Promise<number[]> {
      const rows = inputs.map((input, i) => prepare(input, `/rules/${i}`));
      const seen = new Map<string, number>();
      rows.forEach((r, i) => {
        const key = `${r.policyId ?? ''}|${r.type}|${r.action}|${r.value}`;
        const first = seen.get(key);
        if (first !== undefined) throw invalidField(`/rules/${i}/value`, `duplicates rule ${first} of this import`);
        seen.set(key, i);
      });
      const policyIds = [...new Set(rows.map((r) => r.policyId).filter((id): id is number => id != null))];
      if (policyIds.length > 0) {
        const found = await policyEnabledMap(tx, policyIds);
        const missing = rows.findIndex((r) => r.policyId != null && !found.has(r.policyId));
        if (missing !== -1) throw invalidField(`/rules/${missing}/policyId`, `no security policy ${rows[missing]!.policyId}`);
      }
      await clientsOrThrow(tx, rows, (i) => `/rules/${i}`);
      const ids: number[] = [];
      const CHUNK = 1000;
      const keyOf = (r: { policyId?: number | null; type: string; action?: string | null; value: string }) => `${r.policyId ?? ''}|${r.type}|${r.action ?? 'block'}|${r.value}`;
      for (let i = 0; i < rows.length; i += CHUNK) {
        const chunk = rows.slice(i, i + CHUNK);
        // A rule already stored is skipped here and named below; the caller's transaction then
        // rolls back the whole import.
        const inserted = await tx
          .insert(blocklistRules)
          .values(chunk)
          .onConflictDoNothing()
          .returning({ id: blocklistRules.id, policyId: blocklistRules.policyId, type: blocklistRules.type, action: blocklistRules.action, value: blocklistRules.value });
        if (inserted.length < chunk.length) {
          const made = new Set(inserted.map(keyOf));
          const at = chunk.findIndex((r) => !made.has(keyOf(r)));
          const dup = chunk[at]!;
          const index = i + at;
          const [existing] = await tx
            .select({ id: blocklistRules.id })
            .from(blocklistRules)
            .where(
              and(
                dup.policyId == null ? isNull(blocklistRules.policyId) : eq(blocklistRules.policyId, dup.policyId),
                eq(blocklistRules.type, dup.type),
                eq(blocklistRules.action, dup.action ?? 'block'),
                eq(blocklistRules.value, dup.value),
              ),
            )
            .limit(1);
          throw new ProblemError('conflict', {
            detail: `Rule #/rules/${index} (${dup.type} '${dup.value}') already exists as rule ${existing?.id ?? '?'} (same policy, type, action and value); nothing was imported.`,
            extensions: { index, pointer: `#/rules/${index}`, existingRuleId: existing?.id ?? null, ruleType: dup.type, value: dup.value },
          });
        }
        const byKey = new Map(inserted.map((r) => [keyOf(r), r.id]));
        ids.push(...chunk.map((r) => byKey.get(keyOf(r))!));
      }
      return ids;
    },

    /** `guard` sees the locked row first and may refuse the change (rules made by approved actions). */
    async updateRule(tx: DbOrTx, id: number, patch: UpdateRule, guard?: (current: RuleRow) => void): Promise<{ before: Rule; after: Rule } | undefined> {
      const [current] = await tx.select().from(blocklistRules).where(eq(blocklistRules.id, id)).for('update');
      if (!current) return undefined;
      guard?.(current);
      if (patch.policyId != null) await policyOrThrow(tx, patch.policyId, '/policyId');
      if (patch.expiresAt != null && new Date(patch.expiresAt).getTime() <= Date.now()) throw invalidField('/expiresAt', 'must be in the future (DELETE the rule to end it now)');
      const set: Partial<typeof blocklistRules.$inferInsert> = { updatedAt: new Date() };
      if (patch.action !== undefined) set.action = patch.action;
      if (patch.severity !== undefined) set.severity = patch.severity;
      if (patch.reason !== undefined) set.reason = patch.reason;
      if (patch.policyId !== undefined) set.policyId = patch.policyId;
      if (patch.expiresAt !== undefined) set.expiresAt = patch.expiresAt === null ? null : new Date(patch.expiresAt);
      const [row] = await tx.update(blocklistRules).set(set).where(eq(blocklistRules.id, id)).returning().catch(duplicateRule(current.type, current.value));
      const [before, after] = await toRules(tx, [current, row!]);
      return { before: before!, after: after! };
    },

    async removeRule(tx: DbOrTx, id: number, guard?: (current: RuleRow) => void): Promise<Rule | undefined> {
      // Locked first: an automatic block may turn the row into an action's rule meanwhile.
      const [current] = await tx.select().from(blocklistRules).where(eq(blocklistRules.id, id)).for('update');
      if (!current) return undefined;
      guard?.(current);
      const [row] = await tx.delete(blocklistRules).where(eq(blocklistRules.id, id)).returning();
      return row && (await toRules(tx, [row]))[0];
    },

    // ---- the contract with the other security packs ----------------------------------------

    /**
     * Adds a block rule for an address or network, or extends the one already there (never
     * shortening it). With `escalate`, the TTL doubles for each earlier offence of the same
     * origin whose last occurrence is within the look-back, up to the cap.
     */
    async blockAddress(tx: DbOrTx, input: BlockAddressInput): Promise<BlockedAddress> {
      const target = addressRule(input.address);
      if ('error' in target) throw invalidField('/address', target.error);
      const policyId = input.policyId ?? (await automaticPolicyId(tx));
      const [existing] = await tx
        .select()
        .from(blocklistRules)
        .where(and(eq(blocklistRules.policyId, policyId), eq(blocklistRules.type, target.type), eq(blocklistRules.action, 'block'), eq(blocklistRules.value, target.value)))
        .for('update');
      const now = new Date();
      const recent = existing !== undefined && existing.origin === input.origin && now.getTime() - existing.lastOffenceAt.getTime() <= deps.escalation.lookbackSeconds * 1000;
      const offence = recent ? existing.offences + 1 : 1;
      let ttl = input.ttlSeconds;
      if (ttl !== null && input.escalate) ttl = Math.min(ttl * 2 ** (offence - 1), Math.max(deps.escalation.maxTtlSeconds, input.ttlSeconds ?? 0));
      let expiresAt = ttl === null ? null : new Date(now.getTime() + ttl * 1000);
      if (!existing) {
        const [row] = await tx
          .insert(blocklistRules)
          .values({ policyId, type: target.type, value: target.value, action: 'block', severity: input.severity, reason: input.reason.slice(0, 500), origin: input.origin, expiresAt, offences: 1, lastOffenceAt: now })
          .returning({ id: blocklistRules.id, expiresAt: blocklistRules.expiresAt });
        return { ruleId: row!.id, expiresAt: row!.expiresAt, offence };
      }
      const stillActive = existing.expiresAt === null || existing.expiresAt > now;
      // An active rule that outlives the new block keeps its end, origin and reason.
      const keepsItsEnd = stillActive && (existing.expiresAt === null || (expiresAt !== null && existing.expiresAt >= expiresAt));
      if (keepsItsEnd) expiresAt = existing.expiresAt;
      const [row] = await tx
        .update(blocklistRules)
        .set({
          expiresAt,
          offences: offence,
          lastOffenceAt: now,
          updatedAt: now,
          ...(!keepsItsEnd && { origin: input.origin, reason: input.reason.slice(0, 500), severity: input.severity }),
        })
        .where(eq(blocklistRules.id, existing.id))
        .returning({ id: blocklistRules.id, expiresAt: blocklistRules.expiresAt });
      return { ruleId: row!.id, expiresAt: row!.expiresAt, offence };
    },

    /** Ends (expires now) every active block rule whose value is exactly this address or network. */
    async unblockAddress(tx: DbOrTx, address: string): Promise<{ removedRuleIds: number[] }> {
      const target = addressRule(address);
      if ('error' in target) throw invalidField('/address', target.error);
      const now = new Date();
      const rows = await tx
        .update(blocklistRules)
        .set({ expiresAt: now, updatedAt: now })
        .where(
          and(
            eq(blocklistRules.type, target.type),
            eq(blocklistRules.value, target.value),
            eq(blocklistRules.action, 'block'),
            or(isNull(blocklistRules.expiresAt), gt(blocklistRules.expiresAt, now)),
          ),
        )
        .returning({ id: blocklistRules.id });
      return { removedRuleIds: rows.map((r) => r.id).sort((a, b) => a - b) };
    },

    async recordIncident(tx: DbOrTx, input: SecurityIncidentInput): Promise<{ id: number }> {
      const sourceIp = input.sourceIp === null ? null : (canonicalAddress(input.sourceIp) ?? input.sourceIp.slice(0, 64));
      const [row] = await tx
        .insert(securityIncidents)
        .values({ kind: input.kind.slice(0, 64), severity: input.severity, sourceIp, summary: input.summary.slice(0, 1000), details: input.details, ruleId: input.ruleId ?? null })
        .returning({ id: securityIncidents.id });
      return { id: row!.id };
    },

    // ---- incidents and figures -----------------------------------------------------------

    /** Newest first; keyset on id. */
    async listIncidents(filter: IncidentFilter & { limit: number }): Promise<Page<Incident>> {
      const where: SQL[] = [];
      if (filter.kind) where.push(eq(securityIncidents.kind, filter.kind));
      if (filter.severity) where.push(eq(securityIncidents.severity, filter.severity));
      if (filter.sourceIp) where.push(eq(securityIncidents.sourceIp, canonicalAddress(filter.sourceIp) ?? filter.sourceIp));
      if (filter.since) where.push(gte(securityIncidents.createdAt, new Date(filter.since)));
      const beforeId = decodeIdCursor(filter.cursor);
      if (beforeId !== undefined) where.push(lt(securityIncidents.id, beforeId));
      const rows = await db
        .select()
        .from(securityIncidents)
        .where(where.length ? and(...where) : undefined)
        .orderBy(desc(securityIncidents.id))
        .limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toIncident);
    },

    async incidentById(id: number): Promise<Incident | undefined> {
      const [row] = await db.select().from(securityIncidents).where(eq(securityIncidents.id, id)).limit(1);
      return row && toIncident(row);
    },

    async insertRollups(rows: RollupRow[]): Promise<void> {
      await bulkInsert(db, securityEventRollups, rows);
    },

    /**
     * The blocklist's dashboard figures for `[since, until)`: counts summed from the per-minute
     * roll-ups (index on bucket), active rules from memory, incidents from their table.
     */
    async figures(since: Date, until: Date, state: BlocklistState, now = Date.now()): Promise<BlocklistFigures> {
      const inWindow = and(gte(securityEventRollups.bucket, minuteOf(since)), lt(securityEventRollups.bucket, until));
      const [byKind, topAddresses, incidents] = await Promise.all([
        db
          .select({ kind: securityEventRollups.kind, ruleType: securityEventRollups.ruleType, policyId: securityEventRollups.policyId, n: sql<number>`sum(${securityEventRollups.count})::int` })
          .from(securityEventRollups)
          .where(inWindow)
          .groupBy(securityEventRollups.kind, securityEventRollups.ruleType, securityEventRollups.policyId),
        db
          .select({
            address: securityEventRollups.address,
            blocked: sql<number>`coalesce(sum(${securityEventRollups.count}) filter (where ${securityEventRollups.kind} = 'blocked'), 0)::int`,
            rateLimited: sql<number>`coalesce(sum(${securityEventRollups.count}) filter (where ${securityEventRollups.kind} = 'rate_limited'), 0)::int`,
            authFailures: sql<number>`coalesce(sum(${securityEventRollups.count}) filter (where ${securityEventRollups.kind} = 'auth_failure'), 0)::int`,
            total: sql<number>`sum(${securityEventRollups.count})::int`,
          })
          .from(securityEventRollups)
          .where(and(inWindow, sql`${securityEventRollups.address} is not null`, sql`${securityEventRollups.kind} <> 'monitored'`))
          .groupBy(securityEventRollups.address)
          .orderBy(sql`sum(${securityEventRollups.count}) desc`, asc(securityEventRollups.address))
          .limit(10),
        db
          .select()
          .from(securityIncidents)
          .where(and(gte(securityIncidents.createdAt, since), lt(securityIncidents.createdAt, until)))
          .orderBy(desc(securityIncidents.createdAt), desc(securityIncidents.id))
          .limit(10),
      ]);
      const figures: BlocklistFigures = {
        blocked: { total: 0, byRuleType: {}, byPolicy: [] },
        monitored: 0,
        rateLimited: 0,
        authFailures: 0,
        topAddresses: topAddresses.map((r) => ({ address: r.address ?? '', blocked: r.blocked, rateLimited: r.rateLimited, authFailures: r.authFailures })),
        activeRules: { total: 0, byType: {}, byOrigin: {} },
        recentIncidents: incidents.map((r) => ({ id: r.id, kind: r.kind, severity: r.severity, sourceIp: r.sourceIp, summary: r.summary, createdAt: r.createdAt.toISOString() })),
      };
      const byPolicy = new Map<number | null, number>();
      for (const r of byKind) {
        const n = Number(r.n);
        if (r.kind === 'blocked') {
          figures.blocked.total += n;
          const type = r.ruleType ?? 'unknown';
          figures.blocked.byRuleType[type] = (figures.blocked.byRuleType[type] ?? 0) + n;
          byPolicy.set(r.policyId, (byPolicy.get(r.policyId) ?? 0) + n);
        } else if (r.kind === 'monitored') figures.monitored += n;
        else if (r.kind === 'rate_limited') figures.rateLimited += n;
        else figures.authFailures += n;
      }
      figures.blocked.byPolicy = [...byPolicy]
        .map(([policyId, n]) => ({ policyId, name: policyId === null ? null : (state.policies.get(policyId)?.name ?? null), count: n }))
        .sort((a, b) => b.count - a.count);
      for (const rule of state.matcher.rules.values()) {
        if (rule.expiresAt <= now) continue;
        figures.activeRules.total++;
        figures.activeRules.byType[rule.type] = (figures.activeRules.byType[rule.type] ?? 0) + 1;
        figures.activeRules.byOrigin[rule.origin] = (figures.activeRules.byOrigin[rule.origin] ?? 0) + 1;
      }
      return figures;
    },
  };
}
export type BlocklistRuleService = ReturnType<typeof createBlocklistService>;

const minuteOf = (d: Date): Date => new Date(Math.floor(d.getTime() / 60_000) * 60_000);

function toPolicy(row: PolicyRow, activeRules: number): Policy {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    enabled: row.enabled,
    mode: row.mode,
    activeRules,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

async function activeRuleCounts(tx: DbOrTx, policyIds: number[]): Promise<Map<number, number>> {
  if (policyIds.length === 0) return new Map();
  const rows = await tx
    .select({ policyId: blocklistRules.policyId, n: count() })
    .from(blocklistRules)
    .where(and(inArray(blocklistRules.policyId, policyIds), or(isNull(blocklistRules.expiresAt), gt(blocklistRules.expiresAt, sql`now()`))))
    .groupBy(blocklistRules.policyId);
  return new Map(rows.map((r) => [r.policyId ?? 0, r.n]));
}

/** Severity of an automatic block from how often the address offended. */
export const escalationSeverity = (offence: number): RuleSeverity => (offence >= 4 ? 'critical' : offence >= 2 ? 'high' : 'medium');

