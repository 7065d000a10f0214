import type { DeclaredScopes } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import { consoleRoutes } from './console.js';
import { createRequestFigures, type RequestFigures } from './figures.js';
import { adminRoutes } from './routes.js';
import { createAdminOperationService, type AdminOperationService } from './service.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** UF's reads of the audit trail (the kernel's audit writer fills it). */
    adminOperations: AdminOperationService;
    /** This instance's request figures for the console's charts (GET /system/admin/figures). */
    requestFigures: RequestFigures;
  }
}

/** The scopes this pack's routes require; API keys can hold them while the pack is loaded. */
const scopes = {
  'audit:read': 'Read the admin operations trail and verify its hash chain',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * UF: the admin ops console. Reads the tamper-evident audit trail that the kernel writes
 * (`admin_operations`, src/audit), verifies its hash chain, gathers every pack's overview
 * section into one page, and serves a small web console that calls the same API with a key.
 */
export default definePack({
  name: 'admin',
  code: 'UF',
  description: 'Admin overview, the audit trail of privileged operations with hash-chain verification, and the web console',
  scopes,
  async register(app) {
    app.decorate('adminOperations', createAdminOperationService({ db: app.db }));
    // Every response, any pack's: one O(1) update of an in-memory ring, no I/O.
    const figures = createRequestFigures();
    app.decorate('requestFigures', figures);
    app.addHook('onResponse', function adminRequestFigures(_request, reply, done) {
      figures.record(Date.now(), reply.statusCode, reply.elapsedTime, reply.problemKind);
      done();
    });
  },
  routes: async (app) => {
    await app.register(adminRoutes(app.adminOperations, app.requestFigures));
    await app.register(consoleRoutes);
  },
});
