// Once per run, before any test file:
// 1. What the tests need besides Node (Chromium, Prometheus): scripts/ensure-test-tools.sh installs it
//    (as root) or names what to install (otherwise), so `npm ci && npm test` works on a fresh machine.
// 2. One Postgres server for the whole run: TEST_DATABASE_URL (or DATABASE_URL) when given, else an
//    embedded one under .test-data/ that this setup starts and stops. Each test file then creates its own
//    databases on it (see database.ts), so files never see each other's rows.
// 3. A migrated template pair on that server (our tables; DBOS's system schema), copied by
//    createMigratedTestDatabase for tests that do not test the first start. Dropped at teardown.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { withDatabase } from '../../src/runtime/databases.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/runtime/embeddedPostgres.js';
import { runMigrations } from '../../src/runtime/migrateCommand.js';
import { createDatabases, dropDatabases, serverUrl, TEMPLATE_ENV } from './database.js';

let embedded: EmbeddedPostgres | undefined;
let template: string | undefined;

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
  } else {
    // Files run in parallel, each with its own services (a few dozen connections each): room for all of them.
    embedded = await startEmbeddedPostgres(path.resolve('.test-data'), createLogger('warn'), undefined, 600);
    process.env.XYRA_TEST_SERVER_URL = embedded.url;
  }
  template = await createMigratedTemplate();
  process.env[TEMPLATE_ENV] = template;
}

export async function teardown(): Promise<void> {
  if (template) await dropDatabases([template, `${template}_dbos_sys`]);
  await embedded?.release();
}

/**
 * An app database and its system database migrated by `xyra migrate`'s own code (our migrations, DBOS's, the ops
 * views): what a service finds after its first start.
 */
async function createMigratedTemplate(): Promise<string> {
  const name = `xt_template_${randomBytes(4).toString('hex')}`;
  await createDatabases([[name, undefined]]);
  // It closes every connection it opened: a template copied while a session is connected to it fails.
  await runMigrations(loadConfig({ DATABASE_URL: withDatabase(serverUrl(), name) }), createLogger('warn'));
  return name;
}
