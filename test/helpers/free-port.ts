import { createServer } from 'node:net';

/**
 * A free TCP port on loopback, for a server process started with it (PORT=0 would not say which
 * port it got). Imports nothing but node:net, so tests, benches and scripts share it.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
