import { sql } from 'drizzle-orm';
import { Counter, Histogram } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import type { DbOrTx } from '../../db/client.js';
import { definePack } from '../../src/pack.js';
import { createOutboxDispatcher, defineOutboxFigures, DISPATCH_JOB, DRAIN_BUDGET_MS, type OutboxDispatcher } from './jobs.js';
import { createOutboundHttp } from './outbound.js';
import { notificationRoutes } from './routes.js';
import { createSenders, type SecretSource, type Senders } from './senders.js';
import { createNotificationService, type NotificationEvent, type NotificationService } from './service.js';
import type { OutboxItem } from './schemas.js';
import { notificationOutbox } from './table.js';
import { channelSnapshotSection } from './snapshot.js';
import { createEventRegistry, type EventRegistry } from './events.js';

export type { NotificationEvent } from './service.js';

/** What this pack offers other packs (`app.notifications`). */
export interface Notifications {
  service: NotificationService;
  senders: Senders;
  dispatcher: OutboxDispatcher;
  /**
   * Writes the event's outbox rows (one per enabled channel subscribed to `event.type`) inside
   * the caller's transaction: they are delivered exactly when the caller's change commits.
   */
  enqueue(tx: DbOrTx, event: NotificationEvent): Promise<{ eventId: string; items: OutboxItem[] }>;
  /**
   * Declares the event types a pack emits (call it in `register`): their namespaces are reserved,
   * so `POST /system/notify` cannot send a look-alike. A type enqueued without being declared is
   * reserved (that type only) at its first use, with a warning; only declaring closes the gap before.
   */
  reserveEvents(types: readonly string[]): void;
  /** The reserved event types and namespaces. */
  events: EventRegistry;
}

declare module 'fastify' {
  interface FastifyInstance {
    notifications: Notifications;
  }
}

const scopes = {
  'notify:read': 'Read notification channels and the outbox',
  'notify:write': 'Change notification channels, send notifications, retry dead deliveries',
} as const;

declare module '../../src/access.js' {
  interface ScopeRegistry extends DeclaredScopes<typeof scopes> {}
}

/**
 * Channel secrets are read from the environment by the name a channel's config gives (only
 * `NOTIFY_SECRET_*` names pass the schema); this is the one place the pack reads `process.env`,
 * since the names are data, not settings `app.env` could list.
 */
const processSecrets: SecretSource = (name) => process.env[name];

/**
 * UG: notification channels (webhook signed per Standard Webhooks, email over SMTP, SMS through
 * a generic HTTP provider) and the transactional outbox. Other packs call
 * `app.notifications.enqueue(tx, event)` inside their own transaction; the dispatcher job, on
 * every instance that runs jobs, delivers due rows (SKIP LOCKED claims under a lease, Svix retry
 * schedule with jitter, Retry-After, dead letters, 410 disables the channel).
 */
export default definePack({
  name: 'notifications',
  code: 'UG',
  description: 'Notification channels (webhook, email, sms) with a transactional outbox and a retrying dispatcher',
  scopes,
  dependencies: [],
  async register(app) {
    const service = createNotificationService({
      db: app.db,
      allowPrivate: app.env.WEBHOOK_ALLOW_PRIVATE,
      secrets: processSecrets,
      auditSystem: (tx, entry) => app.audit.record(tx, null, { ...entry, actor: { type: 'system', id: 'notifications', keyId: null } }),
    });
    const http = createOutboundHttp({ allowPrivate: app.env.WEBHOOK_ALLOW_PRIVATE, userAgent: `valhalla-notify/${app.lifecycle.version}` });
    const senders = createSenders({ http, secrets: processSecrets, appName: 'valhalla', allowPrivate: app.env.WEBHOOK_ALLOW_PRIVATE });

    const deliveries = new Counter({
      name: 'valhalla_notifications_total',
      help: 'Delivery attempts by channel type and outcome (delivered, retry, dead)',
      labelNames: ['channel_type', 'outcome'],
      registers: [app.metrics],
    });
    const duration = new Histogram({
      name: 'valhalla_notification_delivery_duration_seconds',
      help: 'Time one delivery attempt took, recording its outcome included',
      labelNames: ['channel_type'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [app.metrics],
    });

    const dispatcher = createOutboxDispatcher({
      service,
      senders,
      owner: app.lifecycle.instanceId,
      batchSize: app.env.NOTIFY_DISPATCH_BATCH,
      concurrency: app.env.NOTIFY_DISPATCH_CONCURRENCY,
      tracing: app.hasDecorator('tracing') ? app.tracing : null,
      log: app.log.child({ component: 'notifications' }),
      onOutcome(type, outcome, seconds) {
        deliveries.inc({ channel_type: type, outcome });
        duration.observe({ channel_type: type }, seconds);
      },
    });

    // Every instance dispatches (no advisory lock): SKIP LOCKED claims keep them on disjoint rows.
    // Each tick drains for at most 10 s, then lets the instance's other jobs run; the next tick goes on.
    app.jobs.definePeriodic({ name: DISPATCH_JOB, intervalMs: app.env.NOTIFY_DISPATCH_INTERVAL_MS, perInstance: true, handler: async (ctx) => void (await dispatcher.drain(ctx.signal, DRAIN_BUDGET_MS)) });
    app.overview.add('notifications', () => service.figures());

    defineOutboxFigures({ registry: app.metrics, jobs: app.jobs, service, intervalMs: app.env.METRICS_REFRESH_INTERVAL_MS });

    app.retention.category({
      name: 'notification_outbox',
      description: 'Delivered and dead outbox rows; pending and sending rows never go',
      table: notificationOutbox,
      idColumn: notificationOutbox.id,
      timeColumn: notificationOutbox.createdAt,
      where: sql`${notificationOutbox.status} in ('delivered', 'dead')`,
      defaultRetainDays: 30,
      readScope: 'notify:read',
    });
    app.snapshots.section(channelSnapshotSection(app.db, service));
    const events = createEventRegistry();
    const enqueue: Notifications['enqueue'] = (tx, event) => {
      if (!events.reservedPatternOf(event.type)) {
        app.log.warn({ eventType: event.type }, 'event type enqueued by a pack without being declared (app.notifications.reserveEvents); reserving the type now');
        events.reserveType(event.type);
      }
      return service.enqueue(tx, event);
    };
    app.decorate('notifications', { service, senders, dispatcher, enqueue, events, reserveEvents: (types) => events.reserve(types) });

    // The packs that announce changes, when loaded: maintenance calls back inside the change's
    // own transaction; a smoke run's failure is told after its results are stored.
    if (app.hasDecorator('maintenance')) {
      app.maintenance.onChange(async (change, tx) => {
        const { view } = change;
        await enqueue(tx, {
          type: change.kind === 'mode' ? 'maintenance.changed' : 'freeze.changed',
          payload: {
            kind: change.kind,
            cause: change.cause,
            windowId: change.windowId,
            mode: view.effective.mode,
            reason: change.kind === 'mode' ? view.effective.reason : view.freeze.reason,
            until: (change.kind === 'mode' ? view.effective.until : view.freeze.until)?.toISOString() ?? null,
            freeze: view.freeze.enabled,
            summary: change.kind === 'mode' ? `mode is ${view.effective.mode} (${change.cause})` : `change freeze ${view.freeze.enabled ? 'on' : 'off'} (${change.cause})`,
          },
        });
      });
    }
    if (app.hasDecorator('deployments')) {
      app.deployments.onSmokeFailed(async ({ run, profile, failedChecks }) => {
        await app.db.transaction((tx) =>
          enqueue(tx, {
            type: 'smoke.failed',
            payload: {
              runId: run.id,
              status: run.status,
              verdict: run.verdict,
              profile,
              failedChecks: failedChecks.map((c) => ({ name: c.name, statusCode: c.statusCode, error: c.error })),
              summary: `smoke run ${run.id}${profile ? ` of ${profile.name}` : ''}: ${run.verdict ?? run.status}`,
            },
          }),
        );
      });
    }
  },
  routes: async (app) => {
    await app.register(notificationRoutes(app.notifications));
  },
});
