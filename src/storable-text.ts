import type { FastifyInstance, FastifyRequest, preValidationHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { ProblemError } from './problem.js';

/**
 * Deepest nesting of objects and arrays a request body may have. JSON.parse accepts any depth,
 * but everything after it that walks a value recursively (validation, the audit trail's
 * canonical JSON, the driver's serialiser) overflows the stack somewhere past a few thousand.
 */
export const BODY_MAX_DEPTH = 64;

type Where = 'body' | 'querystring' | 'params';
interface Finding {
  in: Where;
  pointer: string;
  message: string;
}

const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Any NUL or surrogate: one scan that almost every string passes, before the exact checks. */
const SUSPECT = /[\u0000\uD800-\uDFFF]/;

/**
 * Why PostgreSQL could not store this string, if it could not: `text` holds no NUL character
 * (22021), and `jsonb` refuses `\u0000` (22P05) and a lone UTF-16 surrogate (22P02). Without
 * this check they reach the database and come back as 500s.
 */
function unstorable(s: string): string | undefined {
  if (!SUSPECT.test(s)) return undefined;
  if (s.includes('\u0000')) return 'must not contain the NUL character (U+0000)';
  if (LONE_SURROGATE.test(s)) return 'must be well-formed Unicode (no lone surrogate)';
  return undefined;
}

/** Where a value sits: its parent's place and its own key; the JSON pointer is built only for a finding. */
interface Place {
  parent: Place | null;
  key: string;
}
function pointerOf(place: Place | null): string {
  const keys: string[] = [];
  for (let p = place; p; p = p.parent) keys.push(escapePointer(p.key));
  return keys.length === 0 ? '#' : `#/${keys.reverse().join('/')}`;
}

interface Pending {
  value: object;
  place: Place | null;
  depth: number;
}

/** A string is checked where it sits; an object or array is queued for the walk. */
function visit(child: unknown, place: Place, depth: number, stack: Pending[], where: Where): Finding | undefined {
  if (typeof child === 'string') {
    const why = unstorable(child);
    return why ? { in: where, pointer: pointerOf(place), message: why } : undefined;
  }
  if (child !== null && typeof child === 'object') stack.push({ value: child, place, depth });
  return undefined;
}

/** Walks a parsed value without recursion: depth, keys and strings. */
function inspect(value: unknown, where: Where, maxDepth: number): Finding | undefined {
  if (value === null || typeof value !== 'object') {
    const why = typeof value === 'string' ? unstorable(value) : undefined;
    return why ? { in: where, pointer: '#', message: why } : undefined;
  }
  const stack: Pending[] = [{ value, place: null, depth: 0 }];
  while (stack.length > 0) {
    const { value: v, place, depth } = stack.pop()!;
    if (depth >= maxDepth) return { in: where, pointer: pointerOf(place), message: `must not nest deeper than ${maxDepth} levels` };
    let found: Finding | undefined;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length && !found; i++) found = visit(v[i], { parent: place, key: String(i) }, depth + 1, stack, where);
    } else {
      for (const key of Object.keys(v)) {
        const why = unstorable(key);
        if (why) return { in: where, pointer: pointerOf({ parent: place, key }), message: `key ${why}` };
        found = visit((v as Record<string, unknown>)[key], { parent: place, key }, depth + 1, stack, where);
        if (found) break;
      }
    }
    if (found) return found;
  }
  return undefined;
}

/** Callback style: no promise per request for a check that almost always passes. */
const rejectUnstorable: preValidationHookHandler = function (request: FastifyRequest, _reply, done) {
  const found =
    (request.body !== undefined ? inspect(request.body, 'body', BODY_MAX_DEPTH) : undefined) ??
    inspect(request.query, 'querystring', 2) ??
    inspect(request.params, 'params', 1);
  if (!found) return done();
  done(new ProblemError('validation-failed', { detail: 'The request does not match the schema.', errors: [found] }));
};

/**
 * Every route that takes a body, a querystring or path parameters refuses, with a 400
 * `validation-failed` problem naming the JSON pointer, input that no PostgreSQL column could
 * hold (NUL characters, lone surrogates, in values or keys) and bodies nested deeper than
 * `BODY_MAX_DEPTH`: the whole kind of input that otherwise fails in the driver as a 500.
 */
export default fp(
  async function storableText(app: FastifyInstance) {
    app.addHook('onRoute', (route) => {
      if (!route.schema?.body && !route.schema?.querystring && !route.schema?.params) return;
      const existing = route.preValidation;
      route.preValidation = existing ? [rejectUnstorable, ...[existing].flat()] : [rejectUnstorable];
    });
  },
  { name: 'kernel-storable-text', fastify: '5.x' },
);
