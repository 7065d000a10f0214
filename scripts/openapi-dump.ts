// `npm run openapi:dump -- [out.json]`: builds the kernel with every listed pack on an in-memory
// PGlite database (no server, no jobs) and writes its OpenAPI document (default
// dist/openapi.json), for `npm run lint:openapi` and client generators.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createDatabase } from '../db/client.js';
import { generateApiKey } from '../plugins/api-keys/key-format.js';
import { buildApp } from '../src/app.js';
import { envWith } from '../src/env.js';

const out = process.argv[2] ?? 'dist/openapi.json';
const database = await createDatabase();
// A throw-away admin key, so the first-start banner does not print one.
const env = envWith({ LOG_LEVEL: 'silent', RUN_JOBS: false, ADMIN_API_KEY: generateApiKey().token });
const app = await buildApp({ env, database, logger: false });
mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
writeFileSync(out, `${JSON.stringify(app.swagger(), null, 2)}\n`);
await app.close();
await database.close();
console.log(`wrote ${out}`);
