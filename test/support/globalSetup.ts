// Once per run, before any test file:
// 1. What the tests need besides Node (Chromium, Prometheus): scripts/ensure-test-tools.sh installs it
//    (as root) or names what to install (otherwise), so `npm ci && npm test` works on a fresh machine.
// 2. One Postgres server for the whole run: TEST_DATABASE_URL (or DATABASE_URL) when given, else an
//    embedded one under .test-data/ that this setup starts and stops. Each test file then creates its own
//    databases on it (see database.ts), so files never see each other's rows.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createLogger } from '../../src/logger.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/runtime/embeddedPostgres.js';

let embedded: EmbeddedPostgres | undefined;

function ensureTestTools(): void {
  const run = spawnSync('bash', [path.resolve('scripts/ensure-test-tools.sh')], {
    stdio: ['ignore', 'inherit', 'pipe'],
    encoding: 'utf8',
  });
  if (run.status !== 0) {
    throw new Error(`scripts/ensure-test-tools.sh failed: ${run.stderr.trim() || `exit ${run.status ?? run.signal}`}`);
  }
  process.stderr.write(run.stderr);
}

export async function setup(): Promise<void> {
  ensureTestTools();
  const given = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (given) {
    process.env.XYRA_TEST_SERVER_URL = given;
    return;
  }
  // Files run in parallel, each with its own services (a few dozen connections each): room for all of them.
  embedded = await startEmbeddedPostgres(path.resolve('.test-data'), createLogger('warn'), undefined, 600);
  process.env.XYRA_TEST_SERVER_URL = embedded.url;
}

export async function teardown(): Promise<void> {
  await embedded?.release();
}
