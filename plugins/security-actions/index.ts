import { sql } from 'drizzle-orm';
import { Counter } from 'prom-client';
import { hasScope } from '../../src/access.js';
import { definePack } from '../../src/pack.js';
import { createExecutors } from './executors.js';
import { securityActionRoutes } from './routes.js';
import type { PendingAction } from './schemas.js';
import { createSecurityActionService, type SecurityActionService } from './service.js';
import { securityActions } from './table.js';
import { createWorkflow, type Workflow } from './workflow.js';

export type { PendingAction } from './schemas.js';

/** What this pack offers other packs (the security dashboard, TT). */
export interface SecurityActions {
  service: SecurityActionService;
  workflow: Workflow;
  /** Actions waiting for decisions (not yet past their expiry). */
  pendingCount(): Promise<number>;
  /** The oldest `limit` of them. */
  pending(limit: number): Promise<PendingAction[]>;
}

declare module 'fastify' {
  interface FastifyInstance {
    securityActions: SecurityActions;
  }
}

const EXPIRY_INTERVAL_MS = 30_000;

/**
 * TR: the security action workflow. Someone asks for an action (block an address, revoke a key,
 * suspend a client, set the maintenance mode, disable a flag); other people approve it (one for
 * low and medium severity, two for high and critical by default; never the requester); then it
 * executes through the owning pack's service, in one transaction with its audit entry.
 */
export default definePack({
  name: 'security-actions',
  code: 'TR',
  description: 'Security action workflow: request, N approvals by others, execution through the owning packs, expiry',
  // Its routes use the blocklist pack's `security:read` / `security:write` scopes.
  dependencies: ['blocklist', 'api-keys', 'maintenance', 'feature-flags'],
  async register(app) {
    const service = createSecurityActionService({ db: app.db });
    const executors = createExecutors({
      blocklist: () => app.blocklist,
      apiKeys: app.apiKeys,
      maintenance: app.maintenance,
      flags: app.flags,
    });
    const workflow = createWorkflow({ service, executors, writeThrough: app.writeThrough, isAdmin: (request) => hasScope(request, 'admin') });

    const sweeps = new Counter({
      name: 'valhalla_security_actions_swept_total',
      help: 'Security actions the periodic sweep handled: expired while pending, failed as interrupted executions, executed when left approved',
      labelNames: ['outcome'],
      registers: [app.metrics],
    });
    app.jobs.definePeriodic({
      name: 'security-actions:sweep',
      intervalMs: EXPIRY_INTERVAL_MS,
      handler: async () => {
        const { expired, interrupted, executed } = await workflow.sweep();
        sweeps.inc({ outcome: 'expired' }, expired.length);
        sweeps.inc({ outcome: 'interrupted' }, interrupted.length);
        sweeps.inc({ outcome: 'executed' }, executed.length);
      },
    });

    app.retention.category({
      name: 'security_actions',
      description: 'Finished security actions (executed, failed, rejected, cancelled, expired) with their decisions; pending and running ones never go',
      table: securityActions,
      idColumn: securityActions.id,
      timeColumn: securityActions.createdAt,
      readScope: 'security:read',
      where: sql`${securityActions.status} in ('executed', 'failed', 'rejected', 'cancelled', 'expired')`,
      defaultRetainDays: 365,
    });
    app.overview.add('securityActions', async () => ({ pending: await service.pendingCount() }));
    app.decorate('securityActions', {
      service,
      workflow,
      pendingCount: () => service.pendingCount(),
      pending: (limit: number) => service.pending(limit),
    });
  },
  routes: async (app) => {
    await app.register(securityActionRoutes(app.securityActions));
  },
});
