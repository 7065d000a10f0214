import { AjvCompiler, type ValidatorFactory } from '@fastify/ajv-compiler';

/**
 * Type coercion only where the wire format is text. A querystring, a path parameter or a header
 * is always a string on the wire, so `?limit=50` is coerced to the schema's integer. A JSON body
 * carries its own types: `null`, `"work"` or `[1]` reach a handler as sent or are refused with
 * 400, never turned into `""`, `["work"]` or `["1"]` on the way in.
 *
 * Fastify's own compiler (`@fastify/ajv-compiler`, one Ajv instance per option set), built twice
 * from the server's `ajv` options: as given for the text parts, with `coerceTypes: false` for
 * the body. Shared schemas (`addSchema`) reach both.
 */
const fromPool = AjvCompiler();
type RouteSchema = Parameters<ReturnType<ValidatorFactory>>[0]['schema'];

export const buildValidator: ValidatorFactory = (externalSchemas, options) => {
  const textParts = fromPool(externalSchemas, options);
  // JTD (not used here) never coerces.
  const body = options?.mode === 'JTD' ? textParts : fromPool(externalSchemas, { ...options, customOptions: { ...options?.customOptions, coerceTypes: false } });
  return (route) => {
    if (route.httpPart === 'body') return body(route);
    if (route.httpPart === 'headers') return textParts({ ...route, schema: lowerCaseHeaderNames(route.schema) });
    return textParts(route);
  };
};

/**
 * Header names arrive in lower case. Fastify lowercases the names in a headers schema itself,
 * but only for its default compiler; with this one it is done here (the top-level `properties`
 * and `required`, which is how routes declare headers).
 */
function lowerCaseHeaderNames(schema: RouteSchema): RouteSchema {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return schema;
  const lowered = { ...schema };
  const properties: unknown = schema.properties;
  const required: unknown = schema.required;
  if (typeof properties === 'object' && properties !== null) {
    lowered.properties = Object.fromEntries(Object.entries(properties).map(([name, value]) => [name.toLowerCase(), value]));
  }
  if (Array.isArray(required)) lowered.required = required.map((name: unknown) => (typeof name === 'string' ? name.toLowerCase() : name));
  return lowered;
}
