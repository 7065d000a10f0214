import { Counter } from 'prom-client';
import { definePack } from '../../src/pack.js';
import { problemDetailsRoutes } from './routes.js';
import { createErrorEventService, toErrorEventRow, type ErrorEventInsert } from './service.js';
import { errorEvents } from './table.js';

/**
 * TU: problem details. The kernel's one error handler (src/error-handler.ts) answers every
 * error as RFC 9457 problem+json; this pack records each 5xx in `error_events` through a
 * batching writer (the failing request never waits on the insert), counts them, and serves
 * the problem type documentation and the recorded errors.
 */
export default definePack({
  name: 'problem-details',
  code: 'TU',
  description: 'RFC 9457 problem details, error_events and problem type documentation',
  async register(app) {
    const service = createErrorEventService({ db: app.db });
    const serverErrors = new Counter({
      name: 'valhalla_server_errors_total',
      help: 'Responses with a 5xx problem, by problem kind',
      labelNames: ['kind'],
      registers: [app.metrics],
    });
    const writer = app.batchWriters.create<ErrorEventInsert>({ name: 'error_events', write: (rows) => service.insertMany(rows) });
    app.serverErrorListeners.push((event) => {
      serverErrors.inc({ kind: event.kind });
      // An outage is not worth one row per failed request: those are counted, not stored.
      if (event.kind !== 'database-unavailable') writer.push(toErrorEventRow(event, app.lifecycle.instanceId));
    });
    app.retention.category({ name: 'error_events', description: 'Recorded 5xx errors', table: errorEvents, idColumn: errorEvents.id, timeColumn: errorEvents.occurredAt, readScope: 'system:read', defaultRetainDays: 30 });
    app.decorate('errorEvents', service);
    app.overview.add('errors', async () => ({ lastHour: await service.countSince(new Date(Date.now() - 3_600_000)) }));
  },
  routes: async (app) => {
    await app.register(problemDetailsRoutes(app.errorEvents));
  },
});

declare module 'fastify' {
  interface FastifyInstance {
    errorEvents: import('./service.js').ErrorEventService;
  }
}
