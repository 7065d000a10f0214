import Fastify from 'fastify';

// The baseline for `npm run bench`: bare Fastify, logger off, one trivial GET route answering
// what the kernel's /live answers.
const app = Fastify({ logger: false });
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
    void app.close().then(() => process.exit(0));
  });
}
