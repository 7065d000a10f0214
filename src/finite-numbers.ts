import type { FastifyInstance, FastifyRequest, preValidationAsyncHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { ProblemError } from './problem.js';

/**
 * ajv's type coercion turns a query or path value such as `1e999` into `Infinity` and then
 * skips `maximum`, so `?limit=1e999` would reach a handler as Infinity. Routes that declare a
 * querystring or params schema get this check before validation; other routes pay nothing.
 */
function nonFinite(part: unknown): string | undefined {
  if (!part || typeof part !== 'object') return undefined;
  for (const [key, value] of Object.entries(part)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (typeof v === 'string' && v.length > 0 && !Number.isNaN(Number(v)) && !Number.isFinite(Number(v))) return key;
    }
  }
  return undefined;
}

const rejectNonFinite: preValidationAsyncHookHandler = async function (request: FastifyRequest) {
  for (const [where, part] of [['querystring', request.query], ['params', request.params]] as const) {
    const key = nonFinite(part);
    if (key) {
      throw new ProblemError('validation-failed', {
        detail: 'The request does not match the schema.',
        errors: [{ in: where, pointer: `#/${key}`, message: 'must be a finite number' }],
      });
    }
  }
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
