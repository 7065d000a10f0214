import type { FastifyInstance, InjectOptions } from 'fastify';
import type { Caller } from '../../src/access.js';
import { definePack, type Pack } from '../../src/pack.js';
import { allPacks } from '../index.js';
import rateLimitsPack from './index.js';

/** `METHOD url` of every route declared with `config.freeze: true` after the test pack loaded. */
export const frozenRoutes = new Set<string>();

/**
 * Test-only pack, loaded just before rate-limits: a request carrying `x-test-caller` (JSON) is
 * treated as that API client, so precedence, client limits and quotas can be shown for callers
 * the api-keys pack would produce, with any client id, key id, limit and quota.
 */
const testCaller = definePack({
  name: 'test-caller',
  code: 'ZZ',
  description: 'tests only: sets request.caller from the x-test-caller header, records frozen routes',
  async register(app) {
    app.addHook('onRoute', (route) => {
      if (route.config?.freeze === true) for (const m of [route.method].flat()) frozenRoutes.add(`${m} ${route.url}`);
    });
    app.addHook('onRequest', async (request) => {
      const raw = request.headers['x-test-caller'];
      if (typeof raw !== 'string') return;
      const c = JSON.parse(raw) as Partial<Omit<Caller, 'scopes'>>;
      request.caller = {
        clientId: c.clientId ?? 1,
        clientName: 'test',
        keyId: c.keyId ?? 'TESTKEY00000',
        scopes: new Set(['admin']),
        rateLimit: c.rateLimit ?? null,
        dailyQuota: c.dailyQuota ?? null,
      };
    });
  },
});

/** The pack list with the test caller placed right before rate-limits. */
export function packsWithTestCaller(): Pack[] {
  const at = allPacks.indexOf(rateLimitsPack);
  return [...allPacks.slice(0, at), testCaller, ...allPacks.slice(at)];
}

export const asCaller = (caller: Partial<Omit<Caller, 'scopes'>>) => ({ 'x-test-caller': JSON.stringify(caller) });

/** `count` GETs of `url` from `ip`, returning the status codes. */
export async function burst(app: FastifyInstance, url: string, ip: string, count: number, extra: Partial<InjectOptions> = {}): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < count; i++) codes.push((await app.inject({ method: 'GET', url, remoteAddress: ip, ...extra })).statusCode);
  return codes;
}
