import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import pino from 'pino';
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { createDatabase, type Database } from '../db/client.js';
import { runMigrations } from '../db/migrate.js';
import { allPacks } from '../plugins/index.js';
import { loadEnv, type Env } from './env.js';
import { AccessLogController } from './access-log.js';
import errorHandling, { sendProblem } from './error-handler.js';
import finiteNumbers from './finite-numbers.js';
import storableText from './storable-text.js';
import { originForm } from './origin-form.js';
import { buildValidator } from './validator-compiler.js';
import kernel, { type Lifecycle } from './kernel.js';
import { resolvePacks, type Pack } from './pack.js';
import { ProblemSchema } from './problem.js';

export interface BuildAppOptions {
  /** Settings; default: read and validated from process.env. */
  env?: Env;
  /** A database to use instead of opening one from `env` (it is then not closed by the app). */
  database?: Database;
  /** The pack list; default: plugins/index.ts. */
  packs?: Pack[];
  /** Packs appended to the list (a pack's own tests use this). */
  extraPacks?: Pack[];
  /** Pino options or a ready logger; default: JSON to stdout at LOG_LEVEL. */
  logger?: FastifyServerOptions['logger'];
  loggerInstance?: FastifyServerOptions['loggerInstance'];
  /** Apply drizzle/ migrations at build (default true). */
  migrate?: boolean;
}

/** Inbound `X-Request-ID` is reused only when it is short and plain; anything else is replaced. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
export function correlationIdFor(req: IncomingMessage): string {
  const inbound = req.headers['x-request-id'];
  return typeof inbound === 'string' && REQUEST_ID.test(inbound) ? inbound : randomUUID();
}

/**
 * Secrets never reach a log line. The access log writes no headers; these explicit paths cover
 * any pack that logs a request or its headers. Explicit paths only: pino applies redaction to
 * every line, and wildcard paths cost ~15 µs per request (measured by npm run bench); packs
 * that persist arbitrary data redact it themselves (the system-log pack does).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  'res.headers["set-cookie"]',
];

/**
 * stdout for the logs, written in chunks of up to 8 KiB instead of one write per line: a write
 * syscall per request cost ~6 µs of system time here (npm run bench). Lines are collected in an
 * array and joined once per chunk: sonic-boom's own `minLength` buffering appends to one string
 * and measures its UTF-8 length on every write, which cost 1.7 µs per line against 0.85 this way
 * (scripts measured in-process). The chunk goes to a synchronous sonic-boom, which retries EAGAIN
 * on a full pipe, so a chunk never waits for a thread-pool hand-off. A timer writes out what is
 * collected at least every `flushMs`; close() flushes, and lines logged after it (the server's
 * last words) are written at once.
 */
const LOG_FLUSH_INTERVAL_MS = 100;
const LOG_CHUNK = 8192;
function bufferedStdout(flushMs: number) {
  const out = pino.destination({ dest: 1, sync: true });
  let lines: string[] = [];
  let size = 0;
  let closed = false;
  const flush = () => {
    if (size === 0) return;
    const chunk = lines.join('');
    lines = [];
    size = 0;
    out.write(chunk);
  };
  const destination = {
    write(line: string): void {
      if (closed) {
        out.write(line);
        return;
      }
      lines.push(line);
      size += line.length;
      if (size >= LOG_CHUNK) flush();
    },
    flush,
  };
  const timer = setInterval(flush, flushMs);
  timer.unref();
  return {
    destination,
    close() {
      clearInterval(timer);
      flush();
      closed = true;
      out.flushSync();
    },
  };
}

export function parseTrustProxy(value: string): string[] | false {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return list.length ? list : false;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    // running from dist/: one level further up
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  }
}

/**
 * Builds a ready kernel: database opened and migrated, every enabled pack registered, hot-path
 * state loaded. Used by the server, the worker and the tests.
 */
export async function buildApp(options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const env = options.env ?? loadEnv();
  const packs = resolvePacks([...(options.packs ?? allPacks), ...(options.extraPacks ?? [])], env.PACKS_DISABLED);

  // Lines before Fastify's logger exists, to the same stream, so a first start (several seconds
  // on PGlite, which creates its cluster) says what it is doing instead of printing nothing.
  const logStream = bufferedStdout(LOG_FLUSH_INTERVAL_MS);
  const startLog =
    options.loggerInstance ??
    (options.logger === undefined ? pino({ level: env.LOG_LEVEL, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, logStream.destination) : undefined);

  const ownsDatabase = !options.database;
  if (ownsDatabase) startLog?.info({ driver: env.DATABASE_URL ? 'postgres' : 'pglite', ...(env.DATABASE_URL ? {} : { dataDir: env.DATA_DIR }) }, 'opening the database');
  const database = options.database ?? (await createDatabase({ url: env.DATABASE_URL, dataDir: env.DATA_DIR, acquireTimeoutMs: env.DB_ACQUIRE_TIMEOUT_MS, statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS }));
  try {
    if (options.migrate !== false) {
      startLog?.info('applying migrations');
      await runMigrations(database, env.DATABASE_URL);
    }
  } catch (err) {
    if (ownsDatabase) await database.close().catch(() => {});
    logStream.close();
    throw err;
  }

  const lifecycle: Lifecycle = {
    instanceId: env.INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    version: packageVersion(),
    startedAt: new Date(),
    draining: false,
  };

  const app = Fastify({
    ...(options.loggerInstance
      ? { loggerInstance: options.loggerInstance }
      : {
          logger: options.logger ?? {
            level: env.LOG_LEVEL,
            redact: { paths: REDACT_PATHS, censor: '[redacted]' },
            stream: logStream.destination,
          },
        }),
    genReqId: correlationIdFor,
    rewriteUrl: originForm,
    logController: new AccessLogController(),
    trustProxy: parseTrustProxy(env.TRUST_PROXY),
    bodyLimit: env.BODY_LIMIT,
    // Fastify's own 503-while-closing is hard-coded JSON; in-flight and keep-alive requests are
    // served to the end instead, with `Connection: close` (see kernel.ts).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    // Bad URLs and over-long path parameters are answered before routing; without this they
    // would get Fastify's own JSON body instead of problem+json.
    frameworkErrors: (error, request, reply) =>
      sendProblem(request, reply.header('x-request-id', request.id), error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'uri-too-long' : 'malformed-request', {
        detail: error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A path parameter is too long.' : 'The URL could not be decoded.',
      }),
    // allowUnionTypes: `type: ['string', 'number']` keeps a number a number; with coercion on,
    // `anyOf: [string, number]` would turn 18 into "18" in its first branch. Coercion applies to
    // the querystring, params and headers only; bodies are validated without it (buildValidator).
    schemaController: { compilersFactory: { buildValidator } },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: true, allowUnionTypes: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.addHook('onClose', async () => logStream.close());

  // Only JSON bodies: anything else is 415, not a confusing validation error.
  app.removeContentTypeParser('text/plain');
  app.addSchema(ProblemSchema);

  app.log.info({ packs: packs.map((p) => p.meta.name) }, 'loading packs');
  await app.register(
    fp(async function valhalla(root) {
      await root.register(errorHandling);
      await root.register(finiteNumbers);
      await root.register(storableText);
      await root.register(kernel, { env, database, ownsDatabase, lifecycle, packs: packs.map((p) => p.meta) });
      await root.register(swagger, {
        openapi: {
          openapi: '3.1.0',
          info: { title: 'Valhalla kernel', version: lifecycle.version, description: 'Operations control plane. Errors are RFC 9457 problem+json; see /problems/{type}.' },
          components: {},
        },
        refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
        // Security, hook answers (401/403/423/429/503), headers and operationIds: src/api-docs.ts.
        transform: (args) => root.apiDocs.transform(args, 'openapiObject' in args ? args.openapiObject : args.swaggerObject),
        transformObject: (doc) => ('openapiObject' in doc ? root.apiDocs.transformObject(doc.openapiObject) : doc.swaggerObject),
      });
      // The docs UI and the OpenAPI document are public: they describe the API, they hold no data.
      await root.register(async function docs(scope) {
        scope.addHook('onRoute', (route) => {
          route.config = { ...route.config, public: true, trace: false };
        });
        await scope.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: true } });
      });
      for (const pack of packs) await root.register(pack.plugin);
    }),
  );

  await app.ready();
  return app;
}
