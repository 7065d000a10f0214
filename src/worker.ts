import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { loadEnv } from './env.js';

// `npm run worker`: a process that only runs background jobs (web instances set RUN_JOBS=false).
// It builds the same kernel, so every pack defines its jobs exactly as in the server, but it
// does not listen for HTTP.
let env;
try {
  env = { ...loadEnv(), RUN_JOBS: true };
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
const app = await buildApp({ env });
app.log.info({ jobs: app.jobs.definitions }, 'worker started');

closeWithGrace({ delay: env.SHUTDOWN_TIMEOUT_MS }, async ({ signal }) => {
  app.log.info({ signal }, 'worker stopping');
  await app.close();
});
