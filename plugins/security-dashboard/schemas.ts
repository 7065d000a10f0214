import { Type, type Static } from '@sinclair/typebox';
import { IsoDate, Nullable, StrictObject } from '../../src/schemas.js';

export const WINDOWS = { '1h': 3_600_000, '24h': 86_400_000, '7d': 604_800_000 } as const;
export type DashboardWindow = keyof typeof WINDOWS;

export const DashboardQuery = StrictObject({
  window: Type.Optional(Type.Union((Object.keys(WINDOWS) as DashboardWindow[]).map((w) => Type.Literal(w)), { default: '24h', description: 'how far back the counts go' })),
});

const Counts = Type.Record(Type.String(), Type.Integer());
const Severity = Type.Union([Type.Literal('low'), Type.Literal('medium'), Type.Literal('high'), Type.Literal('critical')]);

export const DashboardSchema = Type.Object({
  window: Type.String(),
  since: IsoDate(),
  until: IsoDate(),
  blocked: Type.Object({
    total: Type.Integer(),
    byRuleType: Counts,
    byPolicy: Type.Array(Type.Object({ policyId: Nullable(Type.Integer()), name: Nullable(Type.String()), count: Type.Integer() })),
  }),
  monitored: Type.Integer({ description: 'requests a monitor-mode policy would have blocked' }),
  rateLimited: Type.Integer(),
  authFailures: Type.Integer(),
  honeypotHits: Type.Object({
    total: Type.Integer(),
    byHoneypot: Type.Array(Type.Object({ honeypotId: Type.Integer(), name: Nullable(Type.String({ description: 'null once the honeypot is deleted' })), hits: Type.Integer() })),
  }),
  topAddresses: Type.Array(
    Type.Object({
      address: Type.String(),
      total: Type.Integer(),
      blocked: Type.Integer(),
      rateLimited: Type.Integer(),
      authFailures: Type.Integer(),
      honeypotHits: Type.Integer({ description: 'counted per hour: the whole hour the window starts in' }),
    }),
  ),
  pendingActions: Nullable(
    Type.Object(
      {
        count: Type.Integer(),
        items: Type.Array(
          Type.Object({
            id: Type.Integer(),
            type: Type.String(),
            severity: Severity,
            reason: Type.String(),
            requestedBy: Type.Object({ type: Type.String(), id: Type.String(), keyId: Nullable(Type.String()) }),
            approvals: Type.Integer(),
            requiredApprovals: Type.Integer(),
            createdAt: IsoDate(),
            expiresAt: IsoDate(),
          }),
          { description: 'the oldest ten, oldest first' },
        ),
      },
      { description: 'null when the security action workflow pack is not loaded' },
    ),
  ),
  activeRules: Type.Object({ total: Type.Integer(), byType: Counts, byOrigin: Counts }),
  recentIncidents: Type.Array(
    Type.Object({ id: Type.Integer(), kind: Type.String(), severity: Severity, sourceIp: Nullable(Type.String()), summary: Type.String(), createdAt: IsoDate() }),
  ),
});
export type Dashboard = Static<typeof DashboardSchema>;
