import type { FastifyInstance, FastifyRequest } from 'fastify';
import { hasScope } from '../../src/access.js';
import type { MaintenanceView } from './effective.js';
import { routeConfigOf } from '../../src/pack.js';

export const FREEZE_OVERRIDE_HEADER = 'x-freeze-override';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const REASON_MIN = 3;
const REASON_MAX = 500;

/**
 * The change freeze. Routes declaring `config.freeze: true` refuse non-read methods with 423
 * while the freeze is on (read from memory), unless the caller holds `admin` and sends
 * `x-freeze-override: <reason>`; that override is audited (`freeze.override`) once the request
 * has passed validation, just before its handler runs. A non-admin sending the header gets 403:
 * it asked for something its key cannot do.
 * Registered in the root scope after authentication, so `request.caller` is known.
 */
export function guardChangeFreeze(app: FastifyInstance, current: () => MaintenanceView): void {
  // The reason an admin gave, per request, until the audit entry is written. Not a request
  // decoration: routes registered before this pack (health, api-keys) build their requests
  // without decorations added later, so the field would be missing there.
  const overrides = new WeakMap<FastifyRequest, string>();

  // Callback-style hooks: no promise per request on the common path (no freeze, or a read).
  // A refusal answers and does not call `done`.
  app.addHook('onRequest', (request, reply, done) => {
    if (routeConfigOf(request).freeze !== true || SAFE_METHODS.has(request.method)) return done();
    const { freeze } = current();
    if (!freeze.enabled) return done();
    const header = request.headers[FREEZE_OVERRIDE_HEADER];
    if (header === undefined) {
      reply.problem('locked', {
        detail: `A change freeze is in force${freeze.reason ? `: ${freeze.reason}` : ''}. An admin may override it with the ${FREEZE_OVERRIDE_HEADER} header.`,
        extensions: { freezeUntil: freeze.until ? freeze.until.toISOString() : null },
      });
      return;
    }
    if (!hasScope(request, 'admin')) {
      reply.problem('forbidden', { detail: `Overriding the change freeze needs the admin scope.` });
      return;
    }
    const reason = typeof header === 'string' ? header.trim() : '';
    if (reason.length < REASON_MIN || reason.length > REASON_MAX) {
      reply.problem('validation-failed', {
        detail: `The ${FREEZE_OVERRIDE_HEADER} header must give a reason of ${REASON_MIN} to ${REASON_MAX} characters.`,
        errors: [{ in: 'headers', pointer: `#/${FREEZE_OVERRIDE_HEADER}`, message: `must be ${REASON_MIN} to ${REASON_MAX} characters` }],
      });
      return;
    }
    overrides.set(request, reason);
    done();
  });

  app.addHook('preHandler', (request, _reply, done) => {
    const reason = overrides.get(request);
    if (reason === undefined) return done();
    const target = `${request.method} ${routeConfigOf(request).url ?? ''}`;
    app
      .writeThrough(request, {}, async () => ({
        result: null,
        audit: { operation: 'freeze.override', targetType: 'route', targetId: target, reason, after: { method: request.method, url: routeConfigOf(request).url ?? null } },
      }))
      .then(() => done(), done);
  });
}

/** The OpenAPI side of the freeze: a freezable write may answer 423, and reads the override header. */
export function documentChangeFreeze(app: FastifyInstance): void {
  app.apiDocs.header('X-Freeze-Override', {
    description: `While a change freeze is on: the reason (${REASON_MIN} to ${REASON_MAX} characters) an \`admin\` caller overrides it for this request; audited. Others get 403.`,
    schema: { type: 'string', minLength: REASON_MIN, maxLength: REASON_MAX },
  });
  app.apiDocs.describe(({ method, config }) =>
    config.freeze === true && !SAFE_METHODS.has(method)
      ? { problems: [{ kind: 'locked' }, { kind: 'forbidden' }, { kind: 'validation-failed' }], requestHeaders: ['X-Freeze-Override'] }
      : undefined,
  );
}
