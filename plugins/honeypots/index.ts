import { Counter, Gauge } from 'prom-client';
import type { DeclaredScopes } from '../../src/access.js';
import type { BatchWriter } from '../../src/batch-writer.js';
import { definePack } from '../../src/pack.js';
import type { StateEntry } from '../../src/state-cache.js';
import { createHitAlerts, type HitAlerts } from './alerts.js';
import { addHoneypotHooks, buildState, createShadowCheck, EMPTY_STATE, type HoneypotState, type PendingHit } from './hooks.js';
import { honeypotRoutes } from './routes.js';
import { createHoneypotService, type HoneypotService } from './service.js';
import { honeypotTelemetry } from './table.js';
import { sanitiseHeaders } from './telemetry.js';

/** What this pack offers other packs (the dashboard reads `service.hitFigures`). */
export interface Honeypots {
  service: HoneypotService;
  /** The enabled decoy paths and canary keys, in memory on every instance. */
  state: StateEntry<HoneypotState>;
  telemetry: BatchWriter<PendingHit>;
  alerts: HitAlerts;
  /** Why a decoy path cannot be used (it covers a registered route), or null. */
  shadowedBy(path: string): string | null;
  /** Writes queued telemetry and waits for queued blocks and alerts (tests, shutdown). */
  settle(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    honeypots: Honeypots;
  }
}

/**
 * TS: honeypots. Decoy paths (answered plausibly, never shadowing a real route) and canary API
 * keys in the real `vhk_` format, added and removed at run time through the state cache. A hit
 * is recorded (batched telemetry with sanitised headers and the correlation id) and, off the
 * request path, may block its source through the blocklist, with an incident and a notification
 * in the same transaction (alerts.ts). Canarytokens is the model.
 */
export default definePack({
  name: 'honeypots',
  code: 'TS',
  description: 'Decoy paths and canary API keys: telemetry of every hit, automatic blocking of the source, throttled alerts',
  dependencies: ['blocklist', 'notifications', 'api-keys'],
  async register(app) {
    const service = createHoneypotService({ db: app.db });
    const state = app.stateCache.register('honeypots', async () => buildState(await service.active()), EMPTY_STATE);
    const telemetry = app.batchWriters.create<PendingHit>({
      name: 'honeypot-telemetry',
      write: (items) => service.writeHits(items.map(({ rawHeaders, ...hit }) => ({ ...hit, headers: sanitiseHeaders(rawHeaders) }))),
    });
    const alerts = createHitAlerts({
      writeThrough: app.writeThrough,
      blocklist: app.blocklist,
      enqueue: app.notifications.enqueue,
      log: app.log.child({ component: 'honeypots' }),
      throttleSeconds: app.env.HONEYPOT_ALERT_THROTTLE_SECONDS,
    });
    const hits = new Counter({ name: 'valhalla_honeypot_hits_total', help: 'Honeypot hits by honeypot type (path, canary_key)', labelNames: ['type'], registers: [app.metrics] });
    new Gauge({
      name: 'valhalla_honeypots_active',
      help: 'Enabled decoy paths and canary keys held in memory by this instance',
      registers: [app.metrics],
      collect() {
        const s = state.get();
        this.set(s.decoys.size + s.canaries.size);
      },
    });
    addHoneypotHooks(app, { state, telemetry, alerts, hits });

    // Also what makes it an export dataset (the exports pack reads this catalogue).
    app.retention.category({
      name: 'honeypot_telemetry',
      description: 'Honeypot hits: source address, user agent, method, path, sanitised headers, correlation id',
      table: honeypotTelemetry,
      idColumn: honeypotTelemetry.id,
      timeColumn: honeypotTelemetry.occurredAt,
      readScope: 'security:read',
      defaultRetainDays: 90,
    });
    app.overview.add('honeypots', () => {
      const s = state.get();
      return { decoys: s.decoys.size, canaryKeys: s.canaries.size, telemetryPending: telemetry.pending };
    });
    // Before the kernel closes the writers and the database: finish the blocks already queued.
    app.addHook('onClose', async () => alerts.idle());

    app.decorate('honeypots', {
      service,
      state,
      telemetry,
      alerts,
      shadowedBy: createShadowCheck(() => app.routeCatalog),
      async settle() {
        await alerts.idle();
        await telemetry.flush();
      },
    });
  },
  routes: async (app) => {
    await app.register(honeypotRoutes(app.honeypots));
  },
});
