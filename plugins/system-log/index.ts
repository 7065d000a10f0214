import type { FastifyRequest } from 'fastify';
import { definePack } from '../../src/pack.js';
import { systemLogRoutes } from './routes.js';
import { createSystemLogService, toSystemLogRow, type SystemLogEntry, type SystemLogInsert, type SystemLogService } from './service.js';
import { systemLogs } from './table.js';

export interface SystemLog {
  /**
   * Queues one entry for `system_logs` and echoes it to the pino log; never waits on the
   * database. With `request`, the entry carries its correlation id and actor unless given.
   */
  write(entry: SystemLogEntry, request?: FastifyRequest | null): void;
  query: SystemLogService['query'];
}

/**
 * TV: system log. Significant events (audit, security, lifecycle) become `system_logs` rows
 * through a bounded batching writer, flushed by the kernel on close; request access logs stay
 * on stdout (src/access-log.ts). Secrets in `data` are redacted before anything is queued.
 */
export default definePack({
  name: 'system-log',
  code: 'TV',
  description: 'Persisted system log of significant events, queryable by level, source, event, correlation id, actor and time',
  async register(app) {
    const service = createSystemLogService({ db: app.db });
    const writer = app.batchWriters.create<SystemLogInsert>({ name: 'system_logs', write: (rows) => service.insertMany(rows) });
    const log = app.log.child({ component: 'system-log' });

    const systemLog: SystemLog = {
      write(entry, request) {
        const row = toSystemLogRow(
          {
            ...entry,
            correlationId: entry.correlationId ?? request?.id ?? null,
            actor: entry.actor ?? (request?.actor?.id ? `${request.actor.type}:${request.actor.id}` : null),
          },
          app.lifecycle.instanceId,
        );
        writer.push(row);
        log[row.level]({ source: row.source, event: row.event, correlationId: row.correlationId, actor: row.actor, data: row.data }, row.message);
      },
      query: service.query,
    };
    app.retention.category({ name: 'system_logs', description: 'Persisted significant events', table: systemLogs, idColumn: systemLogs.id, timeColumn: systemLogs.occurredAt, readScope: 'system:read', defaultRetainDays: 30 });
    app.decorate('systemLog', systemLog);

    const { instanceId, version } = app.lifecycle;
    app.addHook('onReady', async () => {
      const packs = app.packs.map((p) => p.name);
      systemLog.write({ level: 'info', source: 'kernel', event: 'kernel.started', message: `instance ${instanceId} started`, data: { instanceId, version, packs } });
    });
    app.addHook('preClose', async () => {
      systemLog.write({ level: 'info', source: 'kernel', event: 'kernel.stopping', message: `instance ${instanceId} stopping`, data: { instanceId, version } });
    });
  },
  routes: async (app) => {
    await app.register(systemLogRoutes(app.systemLog));
  },
});

declare module 'fastify' {
  interface FastifyInstance {
    systemLog: SystemLog;
  }
}
