// One Postgres server for the whole run: TEST_DATABASE_URL (or DATABASE_URL) when given, else an
// embedded one under .test-data/ that this setup starts and stops. Each test file then creates its own
// databases on it (see database.ts), so files never see each other's rows.
import path from 'node:path';
import { createLogger } from '../../src/logger.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/runtime/embeddedPostgres.js';

let embedded: EmbeddedPostgres | undefined;

export async function setup(): Promise<void> {
  const given = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (given) {
    process.env.XYRA_TEST_SERVER_URL = given;
    return;
  }
  embedded = await startEmbeddedPostgres(path.resolve('.test-data'), createLogger('warn'));
  process.env.XYRA_TEST_SERVER_URL = embedded.url;
}

export async function teardown(): Promise<void> {
  await embedded?.release();
}
