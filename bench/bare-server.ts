import Fastify, { type FastifyServerOptions } from 'fastify';

// The baseline for `npm run bench`: bare Fastify, logger off, one trivial GET route answering
// what the kernel's /live answers. With BARE_REQUEST_LOGGING=kernel it is started a second time
// with the kernel's own request logging (src/access-log.ts requestLogging: pino at LOG_LEVEL with the
// kernel's redaction, one access line per request, to the same buffered stdout), so the bench
// shows how much of bare Fastify's throughput logging alone leaves on this machine.
// Imported only then: the plain baseline loads nothing of the kernel.
let logStream: { close(): void } | undefined;
let options: FastifyServerOptions = { logger: false };
if (process.env.BARE_REQUEST_LOGGING === 'kernel') {
  const { bufferedStdout, requestLogging } = await import('../src/access-log.js');
  const stream = bufferedStdout();
  logStream = stream;
  options = requestLogging(process.env.LOG_LEVEL ?? 'info', stream.destination);
}
const app = Fastify(options);
app.get('/', async () => ({ status: 'ok' }));
// Calibration: the same answer after `us` microseconds of synchronous work, to show what a given
// amount of per-request JavaScript costs in throughput on this machine (npm run bench prints it).
app.get<{ Querystring: { us?: string } }>('/work', async (request) => {
  const until = performance.now() + Math.min(1000, Number(request.query.us ?? 0)) / 1000;
  while (performance.now() < until);
  return { status: 'ok' };
});

const port = Number(process.env.PORT ?? 3001);
const host = process.env.HOST ?? '127.0.0.1';
await app.listen({ host, port });

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void app
      .close()
      .then(() => logStream?.close())
      .then(() => process.exit(0));
  });
}
