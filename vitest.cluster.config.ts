import { defineConfig } from 'vitest/config';

// `npm run test:cluster`: two kernel processes behind nginx on one PostgreSQL and one Redis
// (test/cluster/). Not part of `npm test`: it needs nginx, PostgreSQL and Redis on loopback, and
// about two to three minutes. Its database is its own (no global setup: the instances migrate it).
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 240_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    reporters: ['default'],
  },
});
