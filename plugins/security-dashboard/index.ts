import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { definePack } from '../../src/pack.js';
import { problemResponses } from '../../src/problem.js';
import { DashboardQuery, DashboardSchema } from './schemas.js';
import { createDashboardService, type DashboardService } from './service.js';

declare module 'fastify' {
  interface FastifyInstance {
    securityDashboard: DashboardService;
  }
}

const dashboardRoutes =
  (service: DashboardService): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/system/security/dashboard',
      {
        config: { scope: 'security:read' },
        schema: {
          tags: ['security'],
          summary: 'Security at a glance: blocked, rate-limited and refused requests, honeypot hits, top offenders, pending actions, active rules, recent incidents',
          querystring: DashboardQuery,
          response: { 200: DashboardSchema, ...problemResponses(400, 503) },
        },
      },
      async (request) => service.read(request.query.window ?? '24h'),
    );
  };

/**
 * TT: the security dashboard, one read over the security packs: the blocklist's figures
 * (TQ), honeypot hits (TS) and, when the action workflow (TR) is loaded, its pending actions.
 */
export default definePack({
  name: 'security-dashboard',
  code: 'TT',
  description: 'Security dashboard: blocked, rate-limited and refused requests, honeypot hits, offenders, pending actions, rules, incidents',
  dependencies: ['blocklist', 'honeypots'],
  async register(app) {
    const service = createDashboardService({
      blocklist: app.blocklist,
      honeypots: app.honeypots.service,
      // The workflow pack is optional: its pending actions show when it is loaded, else null.
      actions: () => (app.hasDecorator('securityActions') ? app.securityActions : null),
    });
    app.decorate('securityDashboard', service);
  },
  routes: async (app) => {
    await app.register(dashboardRoutes(app.securityDashboard));
  },
});
