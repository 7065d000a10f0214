import type { BlocklistService } from '../blocklist/types.js';
import type { HoneypotService } from '../honeypots/service.js';
import type { SecurityActions } from '../security-actions/index.js';
import { WINDOWS, type Dashboard, type DashboardWindow } from './schemas.js';

/** What the dashboard needs of the security action workflow (TR), when that pack is loaded. */
export type PendingActionsReader = Pick<SecurityActions, 'pendingCount' | 'pending'>;

const TOP = 10;

/**
 * The dashboard's figures, gathered from the packs that own them, in parallel: the blocklist's
 * counters, the honeypots' hit rollups and the pending actions. None of them counts raw rows:
 * each reads pre-aggregated counts (see each pack), so a week costs what an hour costs.
 */
export function createDashboardService(deps: {
  blocklist: Pick<BlocklistService, 'dashboardFigures'>;
  honeypots: Pick<HoneypotService, 'hitFigures'>;
  actions: () => PendingActionsReader | null;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  return {
    async read(window: DashboardWindow): Promise<Dashboard> {
      const until = new Date(now());
      const since = new Date(until.getTime() - WINDOWS[window]);
      const actions = deps.actions();
      const [figures, hits, pendingCount, pending] = await Promise.all([
        deps.blocklist.dashboardFigures(since, until),
        deps.honeypots.hitFigures(since, until, TOP),
        actions ? actions.pendingCount() : null,
        actions ? actions.pending(TOP) : null,
      ]);

      // One list of offenders: the blocklist's counts joined with honeypot hits by address.
      const byAddress = new Map<string, Dashboard['topAddresses'][number]>();
      const row = (address: string) =>
        byAddress.get(address) ?? byAddress.set(address, { address, total: 0, blocked: 0, rateLimited: 0, authFailures: 0, honeypotHits: 0 }).get(address)!;
      for (const a of figures.topAddresses) Object.assign(row(a.address), { blocked: a.blocked, rateLimited: a.rateLimited, authFailures: a.authFailures });
      for (const s of hits.topSources) row(s.address).honeypotHits = s.hits;
      const topAddresses = [...byAddress.values()]
        .map((a) => ({ ...a, total: a.blocked + a.rateLimited + a.authFailures + a.honeypotHits }))
        .sort((a, b) => b.total - a.total || a.address.localeCompare(b.address))
        .slice(0, TOP);

      return {
        window,
        since: since.toISOString(),
        until: until.toISOString(),
        blocked: figures.blocked,
        monitored: figures.monitored,
        rateLimited: figures.rateLimited,
        authFailures: figures.authFailures,
        honeypotHits: { total: hits.total, byHoneypot: hits.byHoneypot },
        topAddresses,
        pendingActions: pendingCount === null || pending === null ? null : { count: pendingCount, items: pending },
        activeRules: figures.activeRules,
        recentIncidents: figures.recentIncidents,
      };
    },
  };
}
export type DashboardService = ReturnType<typeof createDashboardService>;
