import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { loadEnv } from './env.js';
import { safeMessage } from './secrets.js';

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
let app;
try {
  app = await buildApp({ env });
} catch (err) {
  // One line, as the server says it (e.g. the embedded data folder held by another process).
  console.error(`worker start failed: ${safeMessage(err)}`);
  process.exit(1);
}
app.log.info({ jobs: app.jobs.definitions }, 'worker started');

closeWithGrace({ delay: env.SHUTDOWN_TIMEOUT_MS }, async ({ signal }) => {
  app.log.info({ signal }, 'worker stopping');
  await app.close();
});
