import type { ProblemErrorItem } from '../../src/problem.js';
import { VALUE_MAX_BYTES, VALUE_MAX_DEPTH, type ConfigType } from './schemas.js';

/**
 * What a configuration value may be, beyond "any JSON": it matches its declared type, is at most
 * 64 KiB serialized and 32 levels deep, holds only finite numbers (JSON.parse turns `1e999` into
 * Infinity), and no object key that could reach a prototype when a pack merges it into another
 * object. Each problem is an error item pointing into the request body.
 */

/** Keys refused anywhere inside a value (the body parser already refuses `__proto__`). */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** The type a value has on its own: what a new entry gets when the caller names none. */
export function inferType(value: unknown): ConfigType {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number') return 'number';
  if (typeof value === 'boolean') return 'boolean';
  return 'json';
}

function matchesType(type: ConfigType, value: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    case 'json':
      return value !== null && typeof value === 'object';
  }
}

const describe = (value: unknown): string => (value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`);

/** The first structural problem inside `value` (depth, numbers, keys), with its pointer. */
function structureProblem(value: unknown, pointer: string, depth: number): ProblemErrorItem | undefined {
  if (typeof value === 'number' && !Number.isFinite(value)) return { in: 'body', pointer, message: 'must be a finite number' };
  if (value === null || typeof value !== 'object') return undefined;
  if (depth > VALUE_MAX_DEPTH) return { in: 'body', pointer, message: `nests deeper than ${VALUE_MAX_DEPTH} levels` };
  const entries: Array<[string, unknown]> = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  for (const [k, v] of entries) {
    const at = `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    if (!Array.isArray(value) && FORBIDDEN_KEYS.has(k)) return { in: 'body', pointer: at, message: `the key '${k}' is not allowed in a value` };
    const found = structureProblem(v, at, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** Problems with `value` as an entry of `type`, empty when it is acceptable. */
export function valueProblems(type: ConfigType, value: unknown): ProblemErrorItem[] {
  if (value === null || value === undefined) {
    return [{ in: 'body', pointer: '#/value', message: 'must not be null: delete the entry instead' }];
  }
  if (!matchesType(type, value)) {
    const wanted = type === 'json' ? 'an object or an array' : `a ${type}`;
    return [{ in: 'body', pointer: '#/value', message: `must be ${wanted} for type '${type}', got ${describe(value)}` }];
  }
  const structure = structureProblem(value, '#/value', 1);
  if (structure) return [structure];
  const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  if (bytes > VALUE_MAX_BYTES) return [{ in: 'body', pointer: '#/value', message: `is ${bytes} bytes serialized; the limit is ${VALUE_MAX_BYTES}` }];
  return [];
}

/** A deep-frozen copy-free view: values handed to packs cannot be changed under other readers. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
