import type { FastifySchema, RouteOptions } from 'fastify';
import type { RouteConfig } from './pack.js';
import { PROBLEM_CONTENT_TYPE, PROBLEM_KINDS, type ProblemKind } from './problem.js';

/**
 * The OpenAPI document (`/docs/json`) says what the request hooks do to every route, derived in
 * one place from each route's config and schema rather than repeated in every route: which
 * credentials it takes and which scope it needs, the problems a hook may answer instead of the
 * handler (401, 403, 423, 429, 503), the headers those answers carry, the request headers a hook
 * reads, and an `operationId`. A pack whose hooks answer on other packs' routes describes them
 * with `app.apiDocs.describe(rule)` in its `register`; a disabled pack's rules are gone with it.
 */

/** An HTTP header as the document describes it (a request parameter or a response header). */
export interface HeaderDoc {
  description: string;
  schema: Readonly<Record<string, unknown>>;
}

export type SecurityScheme =
  | { type: 'http'; scheme: 'bearer'; bearerFormat?: string; description: string }
  | { type: 'apiKey'; in: 'header'; name: string; description: string };

/** One operation as a rule sees it. */
export interface DocumentedRoute {
  /** Upper-case method. */
  method: string;
  /** Fastify's URL template (`/system/flags/:key`). */
  url: string;
  config: RouteConfig;
}

/** What a pack's hooks add to one operation's documentation. */
export interface OperationDocs {
  /** Alternative credentials (OpenAPI security requirements); the first rule that gives some wins. */
  security?: ReadonlyArray<Readonly<Record<string, readonly string[]>>>;
  /** Problems the hook may answer with instead of the handler, and the headers they carry. */
  problems?: ReadonlyArray<{ kind: ProblemKind; headers?: readonly string[] }>;
  /** Request headers the hook reads (names given to `header`). */
  requestHeaders?: readonly string[];
  /** Headers the hook sets on the operation's 2xx answers. */
  successHeaders?: readonly string[];
  /** A sentence added to the operation's description (e.g. the scope it needs). */
  note?: string;
}

export type DocRule = (route: DocumentedRoute) => OperationDocs | undefined;

/** The subset of an OpenAPI 3.1 document these functions read and write. */
interface Reference {
  $ref: string;
}
interface MediaType {
  schema?: unknown;
}
interface ResponseObject {
  description?: string;
  headers?: Record<string, Reference>;
  content?: Record<string, MediaType>;
}
interface OperationObject {
  operationId?: string;
  description?: string;
  parameters?: unknown[];
  responses?: Record<string, ResponseObject>;
  'x-valhalla-docs'?: Stash;
}
export interface OpenApiDocument {
  servers?: Array<{ url: string; description?: string }>;
  components?: {
    schemas?: Record<string, unknown>;
    headers?: Record<string, unknown>;
    parameters?: Record<string, unknown>;
    securitySchemes?: Record<string, SecurityScheme>;
  };
  paths?: Record<string, Record<string, OperationObject>>;
}

/** Carried from `transform` (per route) to `transformObject` (whole document), then removed. */
const STASH = 'x-valhalla-docs' as const;
interface Stash {
  /** Problem kinds per status, for the response description. */
  kinds: Record<string, ProblemKind[]>;
  /** Header names per status ('2xx' for every success). */
  responseHeaders: Record<string, string[]>;
  requestHeaders: string[];
}

/** The kernel's own headers, on every operation. */
const REQUEST_ID = 'X-Request-ID';
const LOCATION = 'Location';
const RETRY_AFTER = 'Retry-After';
const WWW_AUTHENTICATE = 'WWW-Authenticate';
const KERNEL_HEADERS: Record<string, HeaderDoc> = {
  [REQUEST_ID]: {
    description: 'Correlation id: an inbound value of at most 128 characters of `[A-Za-z0-9._:-]` is kept, anything else replaced; echoed on every response and in every problem and log line.',
    schema: { type: 'string', maxLength: 128, pattern: '^[A-Za-z0-9._:-]{1,128}$' },
  },
  [LOCATION]: { description: 'URL of the created (201) or accepted (202) resource.', schema: { type: 'string' } },
  [RETRY_AFTER]: { description: 'Seconds after which the request may succeed.', schema: { type: 'integer', minimum: 0 } },
  [WWW_AUTHENTICATE]: { description: 'The authentication challenge (RFC 9110 §11.6.1), e.g. `Bearer realm="valhalla"`.', schema: { type: 'string' } },
};

export interface ApiDocs {
  /** Names a header rules can refer to; a second definition of a name is an error. */
  header(name: string, doc: HeaderDoc): void;
  securityScheme(name: string, scheme: SecurityScheme): void;
  /** Adds a rule, asked about every operation. */
  describe(rule: DocRule): void;
  /** @fastify/swagger's per-route `transform`; `document` is the document being generated. */
  transform(args: { schema: FastifySchema; url: string; route: RouteOptions }, document: object): { schema: FastifySchema; url: string };
  /** @fastify/swagger's `transformObject`, run once on the generated document. */
  transformObject<D extends object>(doc: D): D;
}

/** `GET /system/flags/:key/evaluate` → `getSystemFlagsByKeyEvaluate`: unique per method and URL. */
export function operationIdFor(method: string, url: string): string {
  const words = url
    .split('/')
    .filter(Boolean)
    .flatMap((segment) => (segment.startsWith(':') ? ['by', ...segment.slice(1).split(/[^A-Za-z0-9]+/)] : segment.split(/[^A-Za-z0-9]+/)))
    .filter(Boolean);
  const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
  return method.toLowerCase() + words.map(cap).join('');
}

const headerKey = (name: string) => name.replace(/[^A-Za-z0-9]+/g, '');

/** What the body parser answers on a route that reads a body (src/app.ts, src/error-handler.ts). */
const BODY_PROBLEMS: readonly ProblemKind[] = ['payload-too-large', 'unsupported-media-type'];

/** The kinds a matched route may answer with a status (an unknown route is the not-found handler's). */
const kindsOfStatus = (status: number): ProblemKind[] =>
  (Object.keys(PROBLEM_KINDS) as ProblemKind[]).filter((k) => PROBLEM_KINDS[k].status === status && k !== 'route-not-found');

const isProblemRef = (schema: unknown): boolean =>
  typeof schema === 'object' && schema !== null && ((schema as Reference).$ref === 'Problem#' || (schema as Reference).$ref === '#/components/schemas/Problem');

function addUnique<T>(list: T[], items: Iterable<T>): void {
  for (const item of items) if (!list.includes(item)) list.push(item);
}

export function createApiDocs(): ApiDocs {
  const headers = new Map<string, HeaderDoc>(Object.entries(KERNEL_HEADERS));
  const schemes = new Map<string, SecurityScheme>();
  const rules: DocRule[] = [];

  return {
    header(name, doc) {
      if (headers.has(name)) throw new Error(`API docs: header '${name}' is defined twice`);
      headers.set(name, doc);
    },
    securityScheme(name, scheme) {
      if (schemes.has(name)) throw new Error(`API docs: security scheme '${name}' is defined twice`);
      schemes.set(name, scheme);
    },
    describe(rule) {
      rules.push(rule);
    },

    transform({ schema, url, route }, document) {
      // @fastify/swagger looks the schemes up while it generates each operation.
      const components = ((document as OpenApiDocument).components ??= {});
      components.securitySchemes = { ...components.securitySchemes, ...Object.fromEntries(schemes) };
      const method = [route.method].flat()[0]!.toUpperCase();
      const config: RouteConfig = { ...route.config, url: route.url, method };
      const given = (schema ?? {}) as FastifySchema & { operationId?: string; description?: string; security?: unknown; response?: Record<string, unknown> };
      const response: Record<string, unknown> = { ...given.response };
      const stash: Stash = { kinds: {}, responseHeaders: { '2xx': [] }, requestHeaders: [REQUEST_ID] };
      // Problem statuses the route declares itself: any kind of that status.
      for (const [status, body] of Object.entries(response)) {
        if (isProblemRef(body)) addUnique((stash.kinds[status] ??= []), kindsOfStatus(Number(status)));
      }
      // Fastify reads a body on every method but GET and HEAD, whether or not the route takes one:
      // too large is 413, not JSON 415, answered before any handler.
      if (method !== 'GET' && method !== 'HEAD') {
        for (const kind of BODY_PROBLEMS) {
          const status = String(PROBLEM_KINDS[kind].status);
          response[status] ??= { $ref: 'Problem#' };
          addUnique((stash.kinds[status] ??= []), [kind]);
        }
      }
      let security: OperationDocs['security'];
      const notes: string[] = [];

      for (const rule of rules) {
        const docs = rule({ method, url: route.url, config });
        if (!docs) continue;
        if (docs.security && security === undefined) security = docs.security;
        if (docs.note) notes.push(docs.note);
        addUnique(stash.requestHeaders, docs.requestHeaders ?? []);
        addUnique(stash.responseHeaders['2xx']!, docs.successHeaders ?? []);
        for (const { kind, headers: sent = [] } of docs.problems ?? []) {
          const status = String(PROBLEM_KINDS[kind].status);
          response[status] ??= { $ref: 'Problem#' };
          addUnique((stash.kinds[status] ??= []), [kind]);
          addUnique((stash.responseHeaders[status] ??= []), sent);
        }
      }
      for (const status of Object.keys(response)) {
        if (status === '401') addUnique((stash.responseHeaders[status] ??= []), [WWW_AUTHENTICATE]);
        if (status === '201' || status === '202') addUnique((stash.responseHeaders[status] ??= []), [LOCATION]);
        if (status === '503') addUnique((stash.responseHeaders[status] ??= []), [RETRY_AFTER]);
      }

      const description = [given.description, ...notes].filter(Boolean).join('\n\n');
      return {
        url,
        schema: {
          ...given,
          operationId: given.operationId ?? operationIdFor(method, route.url),
          // No rule gave credentials (no authentication pack loaded): nothing asks for any.
          security: given.security ?? security ?? [],
          ...(description ? { description } : {}),
          response,
          [STASH]: stash,
        } as FastifySchema,
      };
    },

    transformObject(doc) {
      const document = doc as OpenApiDocument;
      const components = (document.components ??= {});
      const responseHeaders = new Set<string>();
      const requestHeaders = new Set<string>();
      const known = (name: string): string => {
        if (!headers.has(name)) throw new Error(`API docs: a rule names header '${name}', which no pack defines`);
        return headerKey(name);
      };
      const headerRef = (name: string): Reference => {
        responseHeaders.add(name);
        return { $ref: `#/components/headers/${known(name)}` };
      };
      const seenIds = new Map<string, number>();

      for (const operations of Object.values(document.paths ?? {})) {
        for (const operation of Object.values(operations)) {
          const stash = operation[STASH];
          delete operation[STASH];
          if (operation.operationId) {
            // Two URLs that spell the same words (`/a-b` and `/a/b`) would clash: number the later one.
            const n = seenIds.get(operation.operationId) ?? 0;
            seenIds.set(operation.operationId, n + 1);
            if (n > 0) operation.operationId = `${operation.operationId}${n + 1}`;
          }
          if (!stash) continue;
          operation.parameters = [
            ...(operation.parameters ?? []),
            ...stash.requestHeaders.map((name) => {
              requestHeaders.add(name);
              return { $ref: `#/components/parameters/${known(name)}` };
            }),
          ];
          for (const [status, res] of Object.entries(operation.responses ?? {})) {
            const names = [REQUEST_ID, ...(stash.responseHeaders[status] ?? []), ...(/^2\d\d$/.test(status) ? stash.responseHeaders['2xx']! : [])];
            res.headers = { ...res.headers };
            for (const name of new Set(names)) res.headers[name] = headerRef(name);
            const media = Object.values(res.content ?? {}).find((m) => isProblemRef(m.schema));
            if (media) {
              // The error handler answers every problem as application/problem+json (RFC 9457).
              res.content = { [PROBLEM_CONTENT_TYPE.split(';')[0]!]: media };
              const kinds = stash.kinds[status] ?? kindsOfStatus(Number(status));
              res.description = kinds.map((k) => `${PROBLEM_KINDS[k].title} (\`/problems/${k}\`)`).join('; ') || 'Problem details';
            }
          }
        }
      }

      components.headers = { ...components.headers };
      components.parameters = { ...components.parameters };
      for (const name of [...responseHeaders].sort()) {
        const { description, schema } = headers.get(name)!;
        components.headers[headerKey(name)] = { description, schema };
      }
      for (const name of [...requestHeaders].sort()) {
        const { description, schema } = headers.get(name)!;
        components.parameters[headerKey(name)] = { name, in: 'header', required: false, description, schema };
      }
      components.securitySchemes = { ...components.securitySchemes, ...Object.fromEntries(schemes) };
      // Relative: "Try it out" in /docs calls the instance that serves the page.
      document.servers ??= [{ url: '/', description: 'this instance' }];
      return doc;
    },
  };
}
