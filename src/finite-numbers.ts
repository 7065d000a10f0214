import type { FastifyInstance, FastifyRequest, preValidationHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { ProblemError } from './problem.js';

/**
 * ajv's type coercion turns a query or path value such as `1e999` into `Infinity` and then
 * skips `maximum`, so `?limit=1e999` would reach a handler as Infinity. Routes that declare a
 * querystring or params schema get this check before validation; other routes pay nothing.
 */
function nonFinite(part: unknown): string | undefined {
  if (!part || typeof part !== 'object') return undefined;
  const values = part as Record<string, unknown>;
  for (const key in values) {
    const value = values[key];
    if (Array.isArray(value)) {
      for (const v of value) if (isNonFiniteNumber(v)) return key;
    } else if (isNonFiniteNumber(value)) return key;
  }
  return undefined;
}

/** `1e999`, `-Infinity`: a string that reads as a number but not a finite one. */
function isNonFiniteNumber(v: unknown): boolean {
  if (typeof v !== 'string' || v.length === 0) return false;
  const n = Number(v);
  return n === Infinity || n === -Infinity;
}

/** Callback style: no promise per request for a check that almost always passes. */
const rejectNonFinite: preValidationHookHandler = function (request: FastifyRequest, _reply, done) {
  const inQuery = nonFinite(request.query);
  const inParams = inQuery === undefined ? nonFinite(request.params) : undefined;
  const key = inQuery ?? inParams;
  if (key === undefined) return done();
  done(
    new ProblemError('validation-failed', {
      detail: 'The request does not match the schema.',
      errors: [{ in: inQuery !== undefined ? 'querystring' : 'params', pointer: `#/${key}`, message: 'must be a finite number' }],
    }),
  );
};

export default fp(
  async function finiteNumbers(app: FastifyInstance) {
    app.addHook('onRoute', (route) => {
      if (!route.schema?.querystring && !route.schema?.params) return;
      const existing = route.preValidation;
      route.preValidation = existing ? [rejectNonFinite, ...[existing].flat()] : [rejectNonFinite];
    });
  },
  { name: 'kernel-finite-numbers', fastify: '5.x' },
);
