import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { EnvError, loadEnv } from './env.js';
import { PackConfigError } from './pack.js';
import { safeMessage } from './secrets.js';

// `npm start`: build the kernel, listen, and shut down gracefully on SIGTERM/SIGINT:
// readiness fails first, in-flight requests drain, jobs stop, batched writes flush, the
// database closes. A second signal or SHUTDOWN_TIMEOUT_MS forces the exit.
let env;
try {
  env = loadEnv();
} catch (err) {
  if (err instanceof EnvError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}

let app;
try {
  app = await buildApp({ env });
} catch (err) {
  if (err instanceof PackConfigError) {
    console.error(err.message);
    process.exit(1);
  }
  console.error(`start failed: ${safeMessage(err)}`);
  process.exit(1);
}
const server = app;

closeWithGrace({ delay: env.SHUTDOWN_TIMEOUT_MS }, async ({ signal, err }) => {
  if (err) server.log.error({ err: { message: safeMessage(err) } }, 'shutting down after an uncaught error');
  server.log.info({ signal }, 'shutting down');
  server.lifecycle.draining = true;
  if (env.SHUTDOWN_DELAY_MS > 0) await new Promise((r) => setTimeout(r, env.SHUTDOWN_DELAY_MS));
  await server.close();
  server.log.info('shut down cleanly');
});

await server.listen({ host: env.HOST, port: env.PORT });
