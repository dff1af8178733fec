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
import { DBOS } from '@dbos-inc/dbos-sdk';
import pg from 'pg';
import { createLogger } from '../../src/logger.js';
import { installOpsViews } from '../../src/ops/views.js';
import { withDatabase } from '../../src/runtime/databases.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/runtime/embeddedPostgres.js';
import { createKnex, migrateLatest } from '../../src/runtime/migrations.js';
import { TEMPLATE_ENV } from './database.js';

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
  template = await createMigratedTemplate(process.env.XYRA_TEST_SERVER_URL);
  process.env[TEMPLATE_ENV] = template;
}

export async function teardown(): Promise<void> {
  if (template) await dropDatabases(process.env.XYRA_TEST_SERVER_URL!, [template, `${template}_dbos_sys`]);
  await embedded?.release();
}

/** An app database with our migrations and its system database with DBOS's, as `xyra migrate` leaves them. */
async function createMigratedTemplate(server: string): Promise<string> {
  const name = `xt_template_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: withDatabase(server, 'postgres') });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
    await admin.query(`create database ${name}_dbos_sys`);
  } finally {
    await admin.end();
  }
  const knex = createKnex(withDatabase(server, name), 1);
  try {
    await migrateLatest(knex);
  } finally {
    await knex.destroy(); // a template copied while a session is connected to it fails: none may stay
  }
  const system = withDatabase(server, `${name}_dbos_sys`);
  await DBOS.migrate(system);
  await installOpsViews(system);
  return name;
}

async function dropDatabases(server: string, names: string[]): Promise<void> {
  const admin = new pg.Client({ connectionString: withDatabase(server, 'postgres') });
  await admin.connect();
  try {
    for (const name of names) await admin.query(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
}
