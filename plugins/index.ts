import type { Pack } from '../src/pack.js';
import tracing from './tracing/index.js';
import problemDetails from './problem-details/index.js';
import systemLog from './system-log/index.js';
import health from './health/index.js';
import blocklist from './blocklist/index.js';
import apiKeys from './api-keys/index.js';
import rateLimits from './rate-limits/index.js';
import maintenance from './maintenance/index.js';
import readOnlyShield from './read-only-shield/index.js';
import admin from './admin/index.js';
import routeIndex from './route-index/index.js';
import configRegistry from './config-registry/index.js';
import featureFlags from './feature-flags/index.js';
import deployments from './deployments/index.js';
import notifications from './notifications/index.js';
import retention from './retention/index.js';
import dataExports from './exports/index.js';
import securityActions from './security-actions/index.js';
import honeypots from './honeypots/index.js';
import securityDashboard from './security-dashboard/index.js';

/**
 * The one list of packs, in load order (a pack comes after the packs it depends on). Adding a
 * pack is one line here; `PACKS_DISABLED=a,b` turns packs off at start.
 * Hook order on every request follows this list: tracing context (TW), then authentication
 * (UD), rate limit (UC), change freeze (UE), read-only shield (UJ); the blocklist (TQ) comes
 * before authentication, so a blocked address costs no key verification.
 */
export const allPacks: Pack[] = [
  tracing,
  problemDetails,
  systemLog,
  health,
  // Before api-keys: its onRequest hook runs before authentication (api_client rules run in a later hook).
  blocklist,
  apiKeys,
  rateLimits,
  maintenance,
  readOnlyShield,
  admin,
  routeIndex,
  configRegistry,
  featureFlags,
  deployments,
  // After maintenance and deployments: it subscribes to their change and smoke-failure events.
  notifications,
  retention,
  dataExports,
  // After the packs whose services it executes through: api-keys, maintenance, feature flags (and the blocklist).
  securityActions,
  // After the blocklist (its onRequest hook answers a blocked source before a decoy does) and
  // notifications (a hit notifies).
  honeypots,
  // After the packs it reads: blocklist, honeypots, security actions (pending ones).
  securityDashboard,
];
