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

/** An integer as people write one: optional minus, decimal digits, no leading zero. */
const PLAIN_INTEGER = /^-?(?:0|[1-9][0-9]*)$/;

/**
 * The names of a querystring or params schema's integer properties (`integer`, nullable or in an
 * array). ajv coerces any text `Number()` reads as an integer (`1e3`, `0x3e8`, ` 1000`, `1000.0`),
 * so `/blocklist/1e3` would be rule 1000: such values are refused before coercion.
 */
function integerKeys(schema: unknown): string[] {
  if (!schema || typeof schema !== 'object') return [];
  const properties = (schema as { properties?: unknown }).properties;
  if (!properties || typeof properties !== 'object') return [];
  const isInteger = (s: unknown): boolean => {
    if (!s || typeof s !== 'object') return false;
    const type = (s as { type?: unknown }).type;
    if (type === 'integer' || (Array.isArray(type) && type.includes('integer'))) return true;
    return type === 'array' && isInteger((s as { items?: unknown }).items);
  };
  return Object.entries(properties).filter(([, s]) => isInteger(s)).map(([key]) => key);
}

function notPlainInteger(part: unknown, keys: string[]): string | undefined {
  if (keys.length === 0 || !part || typeof part !== 'object') return undefined;
  const values = part as Record<string, unknown>;
  for (const key of keys) {
    const value = values[key];
    for (const v of Array.isArray(value) ? value : [value]) if (typeof v === 'string' && v !== '' && !PLAIN_INTEGER.test(v)) return key;
  }
  return undefined;
}

const invalid = (where: 'querystring' | 'params', key: string, message: string) =>
  new ProblemError('validation-failed', { detail: 'The request does not match the schema.', errors: [{ in: where, pointer: `#/${key}`, message }] });

/** Callback style: no promise per request for a check that almost always passes. */
const rejectUnreadableNumbers = (queryIntegers: string[], paramIntegers: string[]): preValidationHookHandler =>
  function (request: FastifyRequest, _reply, done) {
    const inQuery = nonFinite(request.query);
    if (inQuery !== undefined) return done(invalid('querystring', inQuery, 'must be a finite number'));
    const inParams = nonFinite(request.params);
    if (inParams !== undefined) return done(invalid('params', inParams, 'must be a finite number'));
    const queryKey = notPlainInteger(request.query, queryIntegers);
    if (queryKey !== undefined) return done(invalid('querystring', queryKey, 'must be an integer in plain decimal digits'));
    const paramKey = notPlainInteger(request.params, paramIntegers);
    if (paramKey !== undefined) return done(invalid('params', paramKey, 'must be an integer in plain decimal digits'));
    done();
  };

export default fp(
  async function finiteNumbers(app: FastifyInstance) {
    app.addHook('onRoute', (route) => {
      if (!route.schema?.querystring && !route.schema?.params) return;
      const check = rejectUnreadableNumbers(integerKeys(route.schema.querystring), integerKeys(route.schema.params));
      const existing = route.preValidation;
      route.preValidation = existing ? [check, ...[existing].flat()] : [check];
    });
  },
  { name: 'kernel-finite-numbers', fastify: '5.x' },
);
