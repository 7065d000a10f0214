import { configDefaults, defineConfig } from 'vitest/config';

// Tests run against PostgreSQL when TEST_DATABASE_URL (or DATABASE_URL) is set, each file on a
// fresh database of its own; otherwise each file gets an in-memory PGlite. Either is a copy of
// one database the global setup migrates once per run (test/helpers/global-setup.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'plugins/**/*.test.ts', 'db/**/*.test.ts'],
    // Browser tests run with `npm run test:browser` (vitest.browser.config.ts), the processes
    // behind nginx with `npm run test:cluster` (vitest.cluster.config.ts).
    exclude: [...configDefaults.exclude, '**/*.browser.test.ts', 'test/cluster/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
