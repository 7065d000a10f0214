import { createInterface } from 'node:readline';
import { buildApp } from '../../src/app.js';
import { loadEnv } from '../../src/env.js';

// A kernel in a process of its own that drains the notification outbox once, for tests that need
// two dispatchers in two processes (not two instances sharing one event loop). Reads DATABASE_URL
// and the rest from its environment, prints `ready`, waits for a `go` line on stdin so both
// processes start claiming together, then prints `claimed <n>` and exits.
const app = await buildApp({ env: loadEnv(), migrate: false, logger: false });
console.log('ready');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() !== 'go') continue;
  const claimed = await app.notifications.dispatcher.drain(undefined, 60_000);
  console.log(`claimed ${claimed}`);
  break;
}
lines.close();
await app.close();
process.exit(0);
