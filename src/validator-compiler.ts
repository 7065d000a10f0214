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

export const buildValidator: ValidatorFactory = (externalSchemas, options) => {
  const textParts = fromPool(externalSchemas, options);
  // JTD (not used here) never coerces.
  const body = options?.mode === 'JTD' ? textParts : fromPool(externalSchemas, { ...options, customOptions: { ...options?.customOptions, coerceTypes: false } });
  return (route) => (route.httpPart === 'body' ? body(route) : textParts(route));
};
