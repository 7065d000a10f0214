import { Type, type ObjectOptions, type Static, type TProperties, type TSchema } from '@sinclair/typebox';

/**
 * Body and query objects reject unknown fields (400 naming the field), per the API conventions.
 * Response objects use plain `Type.Object`.
 */
export const StrictObject = <T extends TProperties>(properties: T, options: ObjectOptions = {}) =>
  Type.Object(properties, { additionalProperties: false, ...options });

export const IsoDate = (description?: string) => Type.String({ format: 'date-time', description });

/** A path id: positive integer identity. */
export const IdParams = StrictObject({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });

/** Accepts an ISO timestamp as a query value. */
export const QueryTimestamp = (description: string) => Type.String({ format: 'date-time', maxLength: 40, description });

/**
 * `T | null` for a primitive or object schema, as one JSON Schema `type: [t, 'null']`. Prefer it to
 * `Type.Union([T, Type.Null()])`: where Ajv coerces types, it turns a value that fails `T` (0, '',
 * false) into null for the null branch, so `{ "dailyQuota": 0 }` would silently mean "no quota".
 * Bodies are no longer coerced (src/validator-compiler.ts), but one shape serves both.
 */
export const Nullable = <T extends TSchema & { type: string }>(schema: T) => Type.Unsafe<Static<T> | null>({ ...schema, type: [schema.type, 'null'] });
