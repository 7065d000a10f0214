import { Type } from '@sinclair/typebox';
import { definePack } from '../../src/pack.js';

/**
 * A pack for tests only (loaded with `createTestApp({}, { extraPacks: [shieldFixturePack] })`,
 * never listed in plugins/index.ts): one route of each kind the freeze and the shield tell apart.
 * - `/system/fixture/items`: ordinary read and writes; the writes are control-plane (`freeze: true`);
 * - `/system/fixture/open`: opted out of the shield (`shield: false`), still frozen;
 * - `/system/fixture/plain`: a write that the freeze does not concern;
 * - `/system/admin/shield-fixture`: an admin endpoint, open to admin callers in maintenance mode.
 */
export const FIXTURE = '/system/fixture';
/** Stands in for the admin console's endpoints (the admin pack is not built on this branch). */
export const ADMIN_FIXTURE = '/system/admin/shield-fixture';
const ok = Type.Object({ ok: Type.Boolean() });
const schema = (summary: string) => ({ tags: ['fixture'], summary, response: { 200: ok } });

export const shieldFixturePack = definePack({
  name: 'shield-fixture',
  code: 'ZZ',
  description: 'Test-only routes for the maintenance and shield tests',
  routes: async (app) => {
    const answer = async () => ({ ok: true });
    app.get(`${FIXTURE}/items`, { config: { scope: 'system:read' }, schema: schema('read') }, answer);
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      app.route({ method, url: `${FIXTURE}/items`, config: { scope: 'system:write', freeze: true }, schema: schema(`${method} frozen write`), handler: answer });
    }
    app.get(`${FIXTURE}/open`, { config: { scope: 'system:read', shield: false }, schema: schema('opted-out read') }, answer);
    app.post(`${FIXTURE}/open`, { config: { scope: 'system:write', shield: false, freeze: true }, schema: schema('opted-out write') }, answer);
    app.get(ADMIN_FIXTURE, { config: { scope: 'admin' }, schema: schema('admin-only read') }, answer);
    app.post(`${FIXTURE}/plain`, { config: { scope: 'system:write' }, schema: schema('write outside the freeze') }, answer);
  },
});
