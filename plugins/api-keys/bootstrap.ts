import { eq, sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import { lockKey, type Db } from '../../db/client.js';
import { recordAudit, type Actor } from '../../src/audit/writer.js';
import { generateApiKey, parseApiKey } from './key-format.js';
import { hashSecret } from './service.js';
import { apiClients, apiKeys } from './table.js';

const BOOTSTRAP_LOCK = lockKey('api-keys-bootstrap');
const BOOTSTRAP_ACTOR: Actor = { type: 'bootstrap', id: 'api-keys', keyId: null };
export const BOOTSTRAP_CLIENT = 'bootstrap-admin';

/**
 * The first admin key (SPEC UD):
 * - `ADMIN_API_KEY` set: that key exists with scope `admin` (created on first sight; a key an
 *   operator revoked later stays revoked: restarting does not bring it back);
 * - unset, and no API client exists yet: a key is generated and handed to `announce` once (the
 *   server prints it to stdout); it is never shown again.
 * Several instances starting together on an empty database create one key: the check and the
 * insert run under a transaction-scoped advisory lock.
 * Returns the generated token, if one was generated.
 */
export async function bootstrapAdminKey(
  db: Db,
  opts: { adminApiKey: string | undefined; log: FastifyBaseLogger; announce: (token: string) => void },
): Promise<string | undefined> {
  const generated = await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK.toString()}::bigint)`);
    let token: string | undefined;
    let parsed;
    if (opts.adminApiKey) {
      parsed = parseApiKey(opts.adminApiKey);
      if (!parsed) throw new Error('ADMIN_API_KEY is not a valid vhk_ key (its checksum does not match)');
      const [existing] = await tx.select({ secretHash: apiKeys.secretHash, revokedAt: apiKeys.revokedAt }).from(apiKeys).where(eq(apiKeys.keyId, parsed.keyId));
      if (existing) {
        if (existing.secretHash !== hashSecret(parsed.secret)) opts.log.warn('ADMIN_API_KEY: a key with its key id exists with another secret; left unchanged');
        else if (existing.revokedAt) opts.log.warn('ADMIN_API_KEY is revoked; it stays revoked (create a new admin key or unset the variable)');
        return undefined;
      }
    } else {
      const [anyClient] = await tx.select({ id: apiClients.id }).from(apiClients).limit(1);
      if (anyClient) return undefined;
      const fresh = generateApiKey();
      parsed = fresh;
      token = fresh.token;
    }
    await tx
      .insert(apiClients)
      .values({ name: BOOTSTRAP_CLIENT, owner: 'operators', description: 'Created at first start for the first admin key', scopes: ['admin'] })
      .onConflictDoNothing({ target: apiClients.name });
    const [client] = await tx.select().from(apiClients).where(eq(apiClients.name, BOOTSTRAP_CLIENT));
    const scopes = client!.scopes.includes('admin') ? ['admin'] : client!.scopes;
    const [key] = await tx
      .insert(apiKeys)
      .values({ clientId: client!.id, keyId: parsed.keyId, secretHash: hashSecret(parsed.secret), name: opts.adminApiKey ? 'ADMIN_API_KEY' : 'generated at first start', scopes })
      .returning({ id: apiKeys.id, keyId: apiKeys.keyId });
    await recordAudit(tx, {
      actor: BOOTSTRAP_ACTOR,
      operation: 'api-key.bootstrap',
      targetType: 'api-key',
      targetId: key!.keyId,
      after: { clientId: client!.id, keyId: key!.keyId, scopes, source: opts.adminApiKey ? 'ADMIN_API_KEY' : 'generated' },
    });
    return token;
  });
  if (generated) opts.announce(generated);
  return generated;
}

/** The one-time banner for a generated key: plain text on stdout, outside the JSON log stream. */
export function printGeneratedKey(token: string): void {
  process.stdout.write(
    [
      '',
      '================================================================================',
      ' Valhalla: no API client existed, so a first admin API key was generated.',
      ' It is shown this once and stored only as a hash. Keep it in a secret manager:',
      '',
      `   ${token}`,
      '',
      ' Use it as `Authorization: Bearer <key>`; create narrower keys with it, then',
      ' revoke it or keep it for emergencies (see README, "The first key").',
      '================================================================================',
      '',
    ].join('\n'),
  );
}
