import { configDefaults, defineConfig } from 'vitest/config';

// Test files run in parallel: each creates its own databases (test/support/database.ts), starts its services on
// PORT=0 and uses its own data directories, and every wait is on a condition with a generous bound, so a
// loaded machine makes a file slower, not red. Most of a file's time is spent waiting on real processes
// (services, Postgres, Chromium), so four files at once on 2 cores: 7.4 min for every file where one at a time
// took 17 min (XYRA_TEST_WORKERS overrides the count).
//
// `npm test` runs every file but the long end-to-end scenarios below; `npm run test:e2e` (XYRA_TEST_SET=e2e)
// runs those, and CI runs both. They replay whole incidents in real time against real processes: Postgres
// stopped for longer than FAILOVER_AFTER, a replica SIGKILLed for good and taken over, every connection cut,
// a randomized SIGKILL of an ingestion. XYRA_TEST_SET=all runs both sets in one go.
export const E2E_FILES = [
  'test/outage.test.ts',
  'test/failover.test.ts',
  'test/fencing.test.ts',
  'test/pipelineInvariant.test.ts',
];
const set = process.env.XYRA_TEST_SET ?? 'default';
// A file named on the command line (`npx vitest run test/outage.test.ts`) runs whatever set it is in.
const namedFiles = process.argv.slice(2).some((a) => a.endsWith('.test.ts'));
const workers = Number.parseInt(process.env.XYRA_TEST_WORKERS ?? '', 10);

export default defineConfig({
  test: {
    include: set === 'e2e' ? E2E_FILES : ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, ...(set === 'default' && !namedFiles ? E2E_FILES : [])],
    globalSetup: ['test/support/globalSetup.ts'],
    setupFiles: ['test/support/leftoverServices.ts'],
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: Number.isInteger(workers) && workers > 0 ? workers : 4,
    testTimeout: 180_000, // generous: a test waits on conditions, a loaded machine only makes it slower
    hookTimeout: 120_000,
    reporters: ['default', './test/support/slowestFiles.ts'],
  },
});
