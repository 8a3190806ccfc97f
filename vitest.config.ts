import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/lab-guard.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Lab tests create network namespaces; keep files isolated but bounded to the 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
  },
});
