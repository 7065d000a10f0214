import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { DbOrTx } from '../../db/client.js';
import { safeMessage } from '../../src/secrets.js';
import type { WriteThrough } from '../../src/write-through.js';
import type { BlocklistService } from '../blocklist/types.js';
import type { NotificationEvent } from '../notifications/index.js';
import type { ActiveHoneypot } from './service.js';

/** Who an automatic block is recorded as in the audit trail. */
const HONEYPOT_ACTOR = { type: 'system', id: 'honeypots', keyId: null } as const;
export const HONEYPOT_EVENT = 'security.honeypot_hit';
/**
 * A decoy is only reached by a source the blocklist let through, so a decoy hit re-blocks even
 * while this instance's earlier block should still be in force (an operator removed it), except
 * within this long after that block: requests already past the blocklist while it was written.
 */
const DECOY_REBLOCK_GUARD_MS = 2000;
/** Sources remembered at once; past this the oldest quiet ones are forgotten first. */
const MAX_SOURCES = 50_000;

export interface HitAlertDeps {
  writeThrough: WriteThrough;
  blocklist: Pick<BlocklistService, 'entry' | 'blockAddress' | 'recordIncident'>;
  enqueue: (tx: DbOrTx, event: NotificationEvent) => Promise<unknown>;
  log: FastifyBaseLogger;
  /** At most one incident and notification per source in this many seconds (per instance). */
  throttleSeconds: number;
  now?: () => number;
}

export interface HitContext {
  honeypot: ActiveHoneypot;
  sourceIp: string;
  method: string;
  path: string;
  userAgent: string | null;
  request: FastifyRequest;
}

interface SourceState {
  /** No new block before this (epoch ms): the block made for this source is still in force. */
  blockQuietUntil: number;
  /** When this instance last blocked the source (epoch ms). */
  blockedAt: number;
  /** No new incident or notification before this (epoch ms): the alert throttle. */
  alertQuietUntil: number;
  /** The alert work for this source, one at a time. */
  chain: Promise<void>;
}

/**
 * What follows a hit, off the request path: when the honeypot has `autoBlock`, a blocklist rule
 * for the source (origin `honeypot`, TTL escalating for repeat offenders), and a security
 * incident and a `security.honeypot_hit` notification, all in one transaction with its audit
 * entry. Per source the work is serialised, a source blocked by this instance is not blocked
 * again while that block lasts (unless it reaches a decoy, which proves the block is gone), and
 * incidents and notifications are throttled
 * (`HONEYPOT_ALERT_THROTTLE_SECONDS`); telemetry is recorded for every hit regardless.
 */
export function createHitAlerts(deps: HitAlertDeps) {
  const now = deps.now ?? Date.now;
  const sources = new Map<string, SourceState>();

  function forgetQuietSources(at: number): void {
    if (sources.size < MAX_SOURCES) return;
    for (const [ip, s] of sources) {
      if (s.blockQuietUntil <= at && s.alertQuietUntil <= at) sources.delete(ip);
    }
    // Still full (a flood of new sources): drop the oldest entries, map order is insertion order.
    for (const ip of sources.keys()) {
      if (sources.size < MAX_SOURCES) break;
      sources.delete(ip);
    }
  }

  async function alert(hit: HitContext, state: SourceState): Promise<void> {
    const at = now();
    const { honeypot, sourceIp } = hit;
    // A canary key is checked after the response, so a blocked request presenting it counts too:
    // only a decoy hit proves the source is not blocked (any more).
    const reblock = honeypot.type === 'path' && at >= state.blockedAt + DECOY_REBLOCK_GUARD_MS;
    const block = honeypot.autoBlock && (at >= state.blockQuietUntil || reblock);
    const notify = at >= state.alertQuietUntil;
    if (!block && !notify) return;
    const kind = honeypot.type === 'canary_key' ? 'canary_key' : 'honeypot_hit';
    const what = honeypot.type === 'canary_key' ? `canary key '${honeypot.name}' used` : `decoy '${honeypot.name}' hit (${hit.method} ${hit.path})`;
    const outcome = await deps.writeThrough(hit.request, { refresh: block ? [deps.blocklist.entry] : [] }, async (tx) => {
      const blocked = block
        ? await deps.blocklist.blockAddress(tx, {
            address: sourceIp,
            reason: `honeypot: ${what}`,
            severity: honeypot.severity,
            origin: 'honeypot',
            ttlSeconds: honeypot.blockTtlSeconds,
            escalate: true,
          })
        : null;
      let incidentId: number | null = null;
      if (notify) {
        const summary = `${what} from ${sourceIp}${blocked ? `; blocked ${blocked.expiresAt ? `until ${blocked.expiresAt.toISOString()}` : 'until removed'} (offence ${blocked.offence})` : ''}`;
        const details = {
          honeypotId: honeypot.id,
          honeypotName: honeypot.name,
          type: honeypot.type,
          method: hit.method,
          path: hit.path,
          userAgent: hit.userAgent,
          correlationId: hit.request.id,
          ruleId: blocked?.ruleId ?? null,
          expiresAt: blocked?.expiresAt?.toISOString() ?? null,
          offence: blocked?.offence ?? null,
        };
        incidentId = (await deps.blocklist.recordIncident(tx, { kind, severity: honeypot.severity, sourceIp, summary, details, ruleId: blocked?.ruleId ?? null })).id;
        await deps.enqueue(tx, { type: HONEYPOT_EVENT, payload: { ...details, incidentId, sourceIp, severity: honeypot.severity, summary } });
      }
      return {
        result: blocked,
        audit: {
          actor: HONEYPOT_ACTOR,
          operation: blocked ? 'honeypot.auto-block' : 'honeypot.alert',
          targetType: 'honeypot',
          targetId: honeypot.id,
          reason: what,
          after: { sourceIp, ruleId: blocked?.ruleId ?? null, expiresAt: blocked?.expiresAt?.toISOString() ?? null, offence: blocked?.offence ?? null, incidentId },
        },
      };
    });
    const done = now();
    if (block) {
      state.blockedAt = done;
      state.blockQuietUntil = outcome?.expiresAt ? outcome.expiresAt.getTime() : done + deps.throttleSeconds * 1000;
    }
    if (notify) state.alertQuietUntil = done + deps.throttleSeconds * 1000;
  }

  return {
    /** Queues the follow-up of one hit behind this source's earlier ones; never throws. */
    hit(hit: HitContext): Promise<void> {
      let state = sources.get(hit.sourceIp);
      if (!state) {
        forgetQuietSources(now());
        state = { blockQuietUntil: 0, blockedAt: 0, alertQuietUntil: 0, chain: Promise.resolve() };
        sources.set(hit.sourceIp, state);
      }
      const s = state;
      s.chain = s.chain.then(() =>
        alert(hit, s).catch((err: unknown) => {
          deps.log.warn({ honeypotId: hit.honeypot.id, err: { message: safeMessage(err) } }, 'honeypot alert failed');
        }),
      );
      return s.chain;
    },
    /** Resolves when every queued alert has run (shutdown, tests). */
    async idle(): Promise<void> {
      await Promise.all([...sources.values()].map((s) => s.chain));
    },
  };
}
export type HitAlerts = ReturnType<typeof createHitAlerts>;
