import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/globalSetup.ts'],
    pool: 'forks',
    // Tests start real service processes and Postgres work; on 2 cores, files run one at a time so
    // their timing-sensitive parts (cron slots, SIGKILL windows) are not starved by each other.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
