import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
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
import { bufferedStdout, requestLogging } from './access-log.js';
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
  const logStream = bufferedStdout();
  const { logger, ...accessLog } = requestLogging(env.LOG_LEVEL, logStream.destination);
  const startLog = options.loggerInstance ?? (options.logger === undefined ? pino({ level: logger.level, redact: logger.redact }, logger.stream) : undefined);

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
    ...(options.loggerInstance ? { loggerInstance: options.loggerInstance } : { logger: options.logger ?? logger }),
    ...accessLog,
    rewriteUrl: originForm,
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
