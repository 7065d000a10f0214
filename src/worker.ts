import { createServer, type IncomingHttpHeaders } from 'node:http';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { loadEnv } from './env.js';
import { safeMessage } from './secrets.js';

// `npm run worker`: a process that only runs background jobs (web instances set RUN_JOBS=false).
// It builds the same kernel, so every pack defines its jobs exactly as in the server. It serves
// no API: only the probes and metrics on WORKER_PORT, so Kubernetes can restart a stuck worker
// and Prometheus can scrape its job counters.
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

/** The kernel's own /live, /ready and /metrics routes (METRICS_TOKEN included), nothing else. */
const PROBES = new Set(['/live', '/ready', '/metrics']);
function probeServer(kernel: FastifyInstance) {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://worker');
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !PROBES.has(url.pathname)) {
      res.writeHead(404, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: '/problems/route-not-found', title: 'Not Found', status: 404, detail: 'The worker answers only GET /live, /ready and /metrics.', instance: url.pathname }));
      return;
    }
    const headers: IncomingHttpHeaders = {};
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    kernel.inject({ method: req.method, url: `${url.pathname}${url.search}`, headers }).then(
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        res.end(req.method === 'HEAD' ? undefined : answer.rawPayload);
      },
      () => {
        res.writeHead(500).end();
      },
    );
  });
}
const probes = probeServer(app);
await new Promise<void>((resolve, reject) => {
  probes.once('error', reject);
  probes.listen(env.WORKER_PORT, env.HOST, () => resolve());
});
const bound = probes.address();
app.log.info({ port: typeof bound === 'object' && bound ? bound.port : env.WORKER_PORT }, 'worker probes listening (/live, /ready, /metrics)');

closeWithGrace({ delay: env.SHUTDOWN_TIMEOUT_MS }, async ({ signal }) => {
  app.log.info({ signal }, 'worker stopping');
  app.lifecycle.draining = true;
  const closed = new Promise<void>((resolve) => probes.close(() => resolve()));
  probes.closeAllConnections(); // a scraper's keep-alive connection would hold close() open
  await closed;
  await app.close();
});
