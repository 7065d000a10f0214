import { createHash } from 'node:crypto';
import { and, arrayContains, asc, eq, gt, isNotNull, isNull, lte, or, sql, type SQL } from 'drizzle-orm';
import type { Db, DbOrTx } from '../../db/client.js';
import { decodeIdCursor, toPage, type Page } from '../../src/pagination.js';
import { conflictOnUnique, ProblemError } from '../../src/problem.js';
import { generateApiKey } from './key-format.js';
import type { ApiClient, ApiKey, ClientFilter, CreateClient, CreateKey, KeyFilter, NewApiKey, UpdateClient } from './schemas.js';
import { apiClients, apiKeys } from './table.js';

type ClientRow = typeof apiClients.$inferSelect;
type KeyRow = typeof apiKeys.$inferSelect;

export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

const toClient = (row: ClientRow): ApiClient => ({
  id: row.id,
  name: row.name,
  owner: row.owner,
  description: row.description,
  scopes: row.scopes,
  status: row.status === 'suspended' ? 'suspended' : 'active',
  rateLimit: row.rateLimitMax !== null && row.rateLimitWindowSeconds !== null ? { max: row.rateLimitMax, windowSeconds: row.rateLimitWindowSeconds } : null,
  dailyQuota: row.dailyQuota,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

const keyStatus = (row: KeyRow, now = Date.now()): ApiKey['status'] =>
  row.revokedAt ? 'revoked' : row.expiresAt && row.expiresAt.getTime() <= now ? 'expired' : 'active';

const toKey = (row: KeyRow): ApiKey => ({
  id: row.id,
  keyId: row.keyId,
  clientId: row.clientId,
  name: row.name,
  scopes: row.scopes,
  status: keyStatus(row),
  expiresAt: row.expiresAt?.toISOString() ?? null,
  revokedAt: row.revokedAt?.toISOString() ?? null,
  revokedReason: row.revokedReason,
  replacedBy: row.replacedBy,
  lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
  createdAt: row.createdAt.toISOString(),
});


const rethrowDuplicateName = (name: string) => conflictOnUnique(`An API client named '${name}' already exists.`, { name });

/** What the verifier holds in memory: every usable key and every client (suspended included). */
export interface CredentialRows {
  keys: Array<Pick<KeyRow, 'keyId' | 'secretHash' | 'clientId' | 'scopes' | 'expiresAt'>>;
  clients: ClientRow[];
}

function keyStatusFilter(status: KeyFilter['status']): SQL | undefined {
  const now = sql`now()`;
  switch (status) {
    case 'revoked':
      return isNotNull(apiKeys.revokedAt);
    case 'expired':
      return and(isNull(apiKeys.revokedAt), lte(apiKeys.expiresAt, now));
    case 'active':
      return and(isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)));
    default:
      return undefined;
  }
}

function assertSubset(scopes: string[], of: string[], what: string): void {
  const allowed = new Set(of);
  const extra = scopes.filter((s) => !allowed.has(s));
  if (extra.length) {
    throw new ProblemError('unprocessable', { detail: `${what} may only hold the client's scopes; not granted to the client: ${extra.join(', ')}.`, extensions: { scopes: extra } });
  }
}

/**
 * API clients and keys, without HTTP. Reads take the pool; writes take the caller's transaction so
 * the audit entry and the state notification commit with them.
 */
export function createApiKeyService(deps: { db: Db }) {
  const { db } = deps;

  async function insertKey(tx: DbOrTx, client: ClientRow, input: { name: string; scopes: string[]; expiresAt: Date | null }): Promise<NewApiKey> {
    const { token, keyId, secret } = generateApiKey();
    const [row] = await tx
      .insert(apiKeys)
      .values({ clientId: client.id, keyId, secretHash: hashSecret(secret), name: input.name, scopes: input.scopes, expiresAt: input.expiresAt })
      .returning();
    return { ...toKey(row!), token };
  }

  return {
    async listClients(filter: ClientFilter & { limit: number }): Promise<Page<ApiClient>> {
      const where: SQL[] = [];
      if (filter.status) where.push(eq(apiClients.status, filter.status));
      if (filter.owner) where.push(eq(apiClients.owner, filter.owner));
      const afterId = decodeIdCursor(filter.cursor);
      if (afterId !== undefined) where.push(gt(apiClients.id, afterId));
      const rows = await db.select().from(apiClients).where(and(...where)).orderBy(asc(apiClients.id)).limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toClient);
    },

    async clientById(id: number): Promise<ApiClient | undefined> {
      const [row] = await db.select().from(apiClients).where(eq(apiClients.id, id)).limit(1);
      return row && toClient(row);
    },

    async createClient(tx: DbOrTx, input: CreateClient): Promise<ApiClient> {
      const [row] = await tx
        .insert(apiClients)
        .values({
          name: input.name,
          owner: input.owner,
          description: input.description ?? '',
          scopes: input.scopes,
          status: input.status ?? 'active',
          rateLimitMax: input.rateLimit?.max ?? null,
          rateLimitWindowSeconds: input.rateLimit?.windowSeconds ?? null,
          dailyQuota: input.dailyQuota ?? null,
        })
        .returning()
        .catch(rethrowDuplicateName(input.name));
      return toClient(row!);
    },

    async updateClient(tx: DbOrTx, id: number, patch: Omit<UpdateClient, 'reason'>): Promise<{ before: ApiClient; after: ApiClient } | undefined> {
      const [current] = await tx.select().from(apiClients).where(eq(apiClients.id, id)).for('update');
      if (!current) return undefined;
      const set: Partial<typeof apiClients.$inferInsert> = { updatedAt: new Date() };
      if (patch.name !== undefined) set.name = patch.name;
      if (patch.owner !== undefined) set.owner = patch.owner;
      if (patch.description !== undefined) set.description = patch.description;
      if (patch.scopes !== undefined) set.scopes = patch.scopes;
      if (patch.status !== undefined) set.status = patch.status;
      if (patch.rateLimit !== undefined) {
        set.rateLimitMax = patch.rateLimit?.max ?? null;
        set.rateLimitWindowSeconds = patch.rateLimit?.windowSeconds ?? null;
      }
      if (patch.dailyQuota !== undefined) set.dailyQuota = patch.dailyQuota;
      const [row] = await tx.update(apiClients).set(set).where(eq(apiClients.id, id)).returning().catch(rethrowDuplicateName(patch.name ?? current.name));
      return { before: toClient(current), after: toClient(row!) };
    },

    /** Deletes the client and (by cascade) its keys. */
    async removeClient(tx: DbOrTx, id: number): Promise<ApiClient | undefined> {
      const [row] = await tx.delete(apiClients).where(eq(apiClients.id, id)).returning();
      return row && toClient(row);
    },

    async listKeys(clientId: number, filter: KeyFilter & { limit: number }): Promise<Page<ApiKey>> {
      const where: Array<SQL | undefined> = [eq(apiKeys.clientId, clientId), keyStatusFilter(filter.status)];
      const afterId = decodeIdCursor(filter.cursor);
      if (afterId !== undefined) where.push(gt(apiKeys.id, afterId));
      const rows = await db.select().from(apiKeys).where(and(...where)).orderBy(asc(apiKeys.id)).limit(filter.limit + 1);
      return toPage(rows, filter.limit, (r) => [r.id], toKey);
    },

    async keyOf(clientId: number, keyId: string): Promise<ApiKey | undefined> {
      const [row] = await db.select().from(apiKeys).where(and(eq(apiKeys.clientId, clientId), eq(apiKeys.keyId, keyId))).limit(1);
      return row && toKey(row);
    },

    /** A key by its public id, whichever client holds it (how the security action workflow names keys). */
    async keyById(keyId: string, q: DbOrTx = db): Promise<ApiKey | undefined> {
      const [row] = await q.select().from(apiKeys).where(eq(apiKeys.keyId, keyId)).limit(1);
      return row && toKey(row);
    },

    /** A new key under client `clientId`; undefined when the client does not exist. */
    async createKey(tx: DbOrTx, clientId: number, input: CreateKey): Promise<NewApiKey | undefined> {
      const [client] = await tx.select().from(apiClients).where(eq(apiClients.id, clientId)).for('update');
      if (!client) return undefined;
      const scopes = input.scopes ?? client.scopes;
      assertSubset(scopes, client.scopes, 'A key');
      const expiresAt = input.expiresAt ? new Date(input.expiresAt) : null;
      if (expiresAt && expiresAt.getTime() <= Date.now()) {
        throw new ProblemError('unprocessable', { detail: 'expiresAt must be in the future.' });
      }
      return insertKey(tx, client, { name: input.name, scopes, expiresAt });
    },

    async revokeKey(tx: DbOrTx, clientId: number, keyId: string, reason: string): Promise<{ before: ApiKey; after: ApiKey } | undefined> {
      const [current] = await tx.select().from(apiKeys).where(and(eq(apiKeys.clientId, clientId), eq(apiKeys.keyId, keyId))).for('update');
      if (!current) return undefined;
      if (current.revokedAt) throw new ProblemError('conflict', { detail: `Key ${keyId} is already revoked.` });
      const [row] = await tx.update(apiKeys).set({ revokedAt: new Date(), revokedReason: reason }).where(eq(apiKeys.id, current.id)).returning();
      return { before: toKey(current), after: toKey(row!) };
    },

    /**
     * Replaces a key with a new one holding the same scopes. The old key keeps working for
     * `graceSeconds` (its expiry is brought forward to then) so deployments can switch over;
     * 0 revokes it at once.
     */
    async rotateKey(tx: DbOrTx, clientId: number, keyId: string, graceSeconds: number, reason: string | undefined): Promise<{ old: ApiKey; replacement: NewApiKey } | undefined> {
      const [current] = await tx.select().from(apiKeys).where(and(eq(apiKeys.clientId, clientId), eq(apiKeys.keyId, keyId))).for('update');
      if (!current) return undefined;
      if (keyStatus(current) !== 'active') throw new ProblemError('conflict', { detail: `Key ${keyId} is ${keyStatus(current)}; only an active key can be rotated.` });
      const [client] = await tx.select().from(apiClients).where(eq(apiClients.id, clientId));
      const scopes = current.scopes.filter((s) => client!.scopes.includes(s));
      const replacement = await insertKey(tx, client!, { name: current.name, scopes: scopes.length ? scopes : client!.scopes, expiresAt: current.expiresAt });
      const now = Date.now();
      const graceEnd = new Date(now + graceSeconds * 1000);
      const set =
        graceSeconds === 0
          ? { revokedAt: new Date(now), revokedReason: reason ?? `rotated to ${replacement.keyId}`, replacedBy: replacement.keyId }
          : { expiresAt: current.expiresAt && current.expiresAt < graceEnd ? current.expiresAt : graceEnd, replacedBy: replacement.keyId };
      const [row] = await tx.update(apiKeys).set(set).where(eq(apiKeys.id, current.id)).returning();
      return { old: toKey(row!), replacement };
    },

    /** Every key that can still authenticate, and every client: the verifier's in-memory copy. */
    async credentialRows(): Promise<CredentialRows> {
      const [keys, clients] = await Promise.all([
        db
          .select({ keyId: apiKeys.keyId, secretHash: apiKeys.secretHash, clientId: apiKeys.clientId, scopes: apiKeys.scopes, expiresAt: apiKeys.expiresAt })
          .from(apiKeys)
          .where(and(isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, sql`now()`)))),
        db.select().from(apiClients),
      ]);
      return { keys, clients };
    },

    /** Writes the batched last-use times: one statement for all keys seen since the last flush. */
    async recordLastUsed(uses: ReadonlyMap<string, Date>): Promise<void> {
      if (uses.size === 0) return;
      const values = sql.join(
        [...uses].map(([keyId, at]) => sql`(${keyId}, ${at.toISOString()}::timestamptz)`),
        sql`, `,
      );
      await db.execute(
        sql`update ${apiKeys} set last_used_at = greatest(${apiKeys.lastUsedAt}, v.at) from (values ${values}) as v(key_id, at) where ${apiKeys.keyId} = v.key_id`,
      );
    },

    /**
     * Refuses (409, rolling the caller's transaction back) a change that would leave no usable
     * admin key: an operator locked out of the API could only recover through the database.
     */
    async assertAdminRemains(tx: DbOrTx): Promise<void> {
      const [row] = await tx
        .select({ n: sql<number>`count(*)::int` })
        .from(apiKeys)
        .innerJoin(apiClients, eq(apiClients.id, apiKeys.clientId))
        .where(
          and(
            isNull(apiKeys.revokedAt),
            or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, sql`now()`)),
            eq(apiClients.status, 'active'),
            arrayContains(apiKeys.scopes, ['admin']),
            arrayContains(apiClients.scopes, ['admin']),
          ),
        );
      if ((row?.n ?? 0) === 0) throw new ProblemError('conflict', { detail: 'This change would leave no usable admin key; create another admin key first.' });
    },

    async countActiveKeys(): Promise<number> {
      const [row] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(apiKeys)
        .where(and(isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, sql`now()`))));
      return row?.n ?? 0;
    },
  };
}
export type ApiKeyService = ReturnType<typeof createApiKeyService>;
