import fc, { type Arbitrary } from 'fast-check';

/**
 * fast-check arbitraries from the JSON Schemas of an OpenAPI document (the subset TypeBox and
 * @fastify/swagger write: type or type lists, enum/const, anyOf/oneOf/allOf, pattern, format,
 * length, range and item bounds, properties/required/additionalProperties, `$ref` into
 * `components.schemas`). Values satisfy the schema's syntax, not the route's rules beyond it
 * (a window that ends before it starts, a rollout whose weights do not sum to 100), so a
 * generated request may still be refused: with a 4xx the document declares.
 *
 * No maintained npm package fits: `json-schema-fast-check` (the one that exists) is built on
 * fast-check 1 and unmaintained.
 */
export type JsonSchema = { [keyword: string]: unknown };

export interface SchemaArbitraryOptions {
  /** `components.schemas`, for `$ref: '#/components/schemas/Name'`. */
  components?: Record<string, JsonSchema>;
  /**
   * Names to use as keys of free-form objects (`additionalProperties: true`, no `properties`),
   * so an object such as a security action's `params` sometimes holds the fields a route reads.
   */
  keyHints?: readonly string[];
  /** Values known to exist for a property name (ids and keys seen in answers), drawn now and then. */
  knownValues?: (property: string) => readonly unknown[];
}

/** Longest string and array generated beyond their minimum: requests stay small and fast. */
const EXTRA_LENGTH = 24;
const EXTRA_ITEMS = 3;
const MAX_DEPTH = 6;

const asSchema = (value: unknown): JsonSchema | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonSchema) : undefined;
const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

export function schemaArbitrary(schema: unknown, options: SchemaArbitraryOptions = {}): Arbitrary<unknown> {
  const keyHints = options.keyHints ?? [];

  const build = (raw: unknown, depth: number): Arbitrary<unknown> => {
    if (raw === true || raw === undefined) return anyJson(depth);
    const s = asSchema(raw);
    if (!s) return anyJson(depth);
    if (typeof s.$ref === 'string') {
      const name = s.$ref.replace(/^#\/components\/schemas\//, '').replace(/#$/, '');
      const target = options.components?.[name];
      if (!target || depth >= MAX_DEPTH) return fc.constant(null);
      return build(target, depth + 1);
    }
    if ('const' in s) return fc.constant(s.const);
    if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as unknown[]));
    const alternatives = (Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : undefined) as unknown[] | undefined;
    if (alternatives && alternatives.length > 0) {
      // The alternatives inherit the keywords written beside anyOf (`default`, `description`).
      const { anyOf: _a, oneOf: _o, ...rest } = s;
      return fc.oneof(...alternatives.map((alt) => build({ ...rest, ...asSchema(alt) }, depth + 1)));
    }
    if (Array.isArray(s.allOf) && s.allOf.length > 0) {
      const { allOf, ...rest } = s;
      return build(Object.assign({}, rest, ...(allOf as unknown[]).map((part) => asSchema(part) ?? {})), depth + 1);
    }
    if (Array.isArray(s.type)) {
      const types = s.type as string[];
      return fc.oneof(...types.map((type) => build({ ...s, type }, depth + 1)));
    }
    switch (s.type) {
      case 'null':
        return fc.constant(null);
      case 'boolean':
        return fc.boolean();
      case 'integer':
        return integerOf(s);
      case 'number':
        return numberOf(s);
      case 'string':
        return stringOf(s);
      case 'array':
        return arrayOf(s, depth);
      case 'object':
        return objectOf(s, depth);
      default:
        // No type: a property with `properties` is an object, anything else any JSON value.
        if (asSchema(s.properties)) return objectOf(s, depth);
        return anyJson(depth);
    }
  };

  const anyJson = (depth: number): Arbitrary<unknown> => fc.jsonValue({ maxDepth: Math.max(0, Math.min(2, MAX_DEPTH - depth)) });

  const integerOf = (s: JsonSchema): Arbitrary<number> => {
    let min = num(s.minimum) ?? Number.MIN_SAFE_INTEGER;
    let max = num(s.maximum) ?? Number.MAX_SAFE_INTEGER;
    if (num(s.exclusiveMinimum) !== undefined) min = Math.floor(num(s.exclusiveMinimum)!) + 1;
    if (num(s.exclusiveMaximum) !== undefined) max = Math.ceil(num(s.exclusiveMaximum)!) - 1;
    min = Math.max(Math.ceil(min), Number.MIN_SAFE_INTEGER);
    max = Math.min(Math.floor(max), Number.MAX_SAFE_INTEGER);
    return fc.integer({ min, max });
  };

  const numberOf = (s: JsonSchema): Arbitrary<number> => {
    const min = num(s.minimum) ?? num(s.exclusiveMinimum) ?? -1e9;
    const max = num(s.maximum) ?? num(s.exclusiveMaximum) ?? 1e9;
    // Mostly values of a few decimals (what a person writes), sometimes any double in range.
    const decimals = fc.integer({ min: Math.ceil(min * 1000), max: Math.floor(max * 1000) }).map((n) => n / 1000);
    const any = fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
    return fc.oneof({ arbitrary: decimals, weight: 3 }, { arbitrary: any, weight: 1 }).filter((n) => (num(s.exclusiveMinimum) === undefined || n > num(s.exclusiveMinimum)!) && (num(s.exclusiveMaximum) === undefined || n < num(s.exclusiveMaximum)!));
  };

  const stringOf = (s: JsonSchema): Arbitrary<string> => {
    const minLength = num(s.minLength) ?? 0;
    // Only a declared bound filters: a pattern such as `^[0-9a-f]{32}$` sets its own length.
    const maxLength = num(s.maxLength) ?? Infinity;
    const fits = (v: string) => v.length >= minLength && v.length <= maxLength;
    let base: Arbitrary<string>;
    switch (s.format) {
      case 'date-time':
        base = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString());
        break;
      case 'date':
        base = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10));
        break;
      case 'uuid':
        base = fc.uuid();
        break;
      case 'email':
        base = fc.emailAddress();
        break;
      case 'uri':
        base = fc.webUrl();
        break;
      case 'ipv4':
        base = fc.ipV4();
        break;
      case 'ipv6':
        base = fc.ipV6();
        break;
      default:
        if (typeof s.pattern === 'string') {
          const pattern = s.pattern;
          base = fc.stringMatching(new RegExp(pattern));
          // fast-check reads the pattern's own bounds; shorten what the schema's length allows.
          return base.map((v) => (v.length > maxLength && new RegExp(pattern).test(v.slice(0, maxLength)) ? v.slice(0, maxLength) : v)).filter(fits);
        }
        base = fc.string({ minLength, maxLength: Math.min(maxLength, minLength + EXTRA_LENGTH), unit: fc.oneof({ arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), weight: 8 }, { arbitrary: fc.constantFrom('é', '€', '😀', '\u00a0', '\n', '\t'), weight: 1 }) });
        return base;
    }
    return base.filter(fits);
  };

  const arrayOf = (s: JsonSchema, depth: number): Arbitrary<unknown[]> => {
    const minLength = num(s.minItems) ?? 0;
    const maxLength = Math.min(num(s.maxItems) ?? minLength + EXTRA_ITEMS, minLength + EXTRA_ITEMS);
    const items = build(s.items, depth + 1);
    if (s.uniqueItems === true) return fc.uniqueArray(items, { minLength, maxLength, selector: (v) => JSON.stringify(v) });
    return fc.array(items, { minLength, maxLength });
  };

  const objectOf = (s: JsonSchema, depth: number): Arbitrary<Record<string, unknown>> => {
    const properties = asSchema(s.properties) ?? {};
    const required = Array.isArray(s.required) ? (s.required as string[]) : [];
    const names = Object.keys(properties);
    const minProperties = num(s.minProperties) ?? 0;
    const maxProperties = num(s.maxProperties) ?? Infinity;
    const fits = (o: Record<string, unknown>) => Object.keys(o).length >= minProperties && Object.keys(o).length <= maxProperties;
    const property = (n: string): Arbitrary<unknown> => {
      const fromSchema = build(properties[n], depth + 1);
      const existing = options.knownValues?.(n) ?? [];
      return existing.length > 0 ? fc.oneof(fromSchema, fc.constantFrom(...existing)) : fromSchema;
    };
    const requiredKeys = required.filter((r) => names.includes(r));
    const full = fc.record(Object.fromEntries(names.map((n) => [n, property(n)])), { requiredKeys });
    // Now and then only the required fields: every optional field is one more rule to break.
    const known = requiredKeys.length < names.length ? fc.oneof({ arbitrary: full, weight: 2 }, { arbitrary: fc.record(Object.fromEntries(requiredKeys.map((n) => [n, property(n)]))), weight: 1 }) : full;
    const extra = s.additionalProperties;
    if (extra === false || extra === undefined || names.length > 0) return known.filter(fits);
    // Free-form: keys from the hints or any short name, values from `additionalProperties`.
    const key = keyHints.length > 0 ? fc.oneof(fc.constantFrom(...keyHints), fc.string({ minLength: 1, maxLength: 12 })) : fc.string({ minLength: 1, maxLength: 12 });
    const valueSchema = extra === true ? undefined : extra;
    return fc
      .dictionary(key, build(valueSchema, depth + 1), { minKeys: minProperties, maxKeys: Math.min(maxProperties, minProperties + EXTRA_ITEMS + 1), noNullPrototype: true })
      .filter(fits);
  };

  return build(schema, 0);
}
