import { afterAll, describe, expect, it } from 'vitest';
import { startServer, type ServerProcess } from './server-process.js';

// A first start on PGlite takes seconds (the cluster is created, migrations applied): the log
// says what is happening before the server listens, instead of nothing.

let server: ServerProcess | undefined;
afterAll(async () => server?.cleanup());

describe('start-up log', () => {
  it('says it opens the database, applies migrations and loads packs, then listens', { timeout: 120_000 }, async () => {
    server = await startServer();
    const messages = server.output.flatMap((line) => {
      try {
        return [(JSON.parse(line) as { msg?: string }).msg ?? ''];
      } catch {
        return [];
      }
    });
    const steps = ['opening the database', 'applying migrations', 'loading packs'].map((m) => messages.indexOf(m));
    const listening = messages.findIndex((m) => m.startsWith('Server listening at'));
    expect(steps.every((i) => i >= 0), messages.join('\n')).toBe(true);
    expect([...steps, listening]).toEqual([...steps, listening].sort((a, b) => a - b));
    expect(steps[0]).toBe(0);
  });
});
