import { defineConfig } from 'vitest/config';

// `npm run test:browser`: the console in Chromium (plugins/admin/console.browser.test.ts), on
// the same per-file databases as `npm test` (test/helpers/global-setup.ts). Kept out of
// `npm test`: it needs a browser and a few minutes of a busy machine.
export default defineConfig({
  test: {
    include: ['**/*.browser.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 240_000,
    pool: 'forks',
    maxWorkers: 1,
    reporters: ['default'],
  },
});
