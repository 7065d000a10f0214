import { definePack } from '../../src/pack.js';
import { documentShield, installShield } from './hooks.js';

/**
 * UJ: the read-only shield. In `read_only`, writes (POST, PUT, PATCH, DELETE) get 503 `read-only`;
 * in `maintenance`, everything gets 503 `maintenance` except public routes (health, metrics,
 * docs, problem types), routes with `config.shield: false`, and the maintenance endpoints for
 * callers who may change the mode (`maintenance:write` or `admin`) and the admin endpoints for
 * `admin`. `Retry-After` gives the seconds until the effective mode's `until` when it is known.
 * Unknown routes are untouched (404 stays 404). No database query: memory only.
 */
export default definePack({
  name: 'read-only-shield',
  code: 'UJ',
  description: 'Refuses writes in read-only mode and everything but probes and the maintenance switch in maintenance mode',
  dependencies: ['maintenance'],
  async register(app) {
    installShield(app);
    documentShield(app);
  },
});
