// Our knex migrations (tables `tasks`, `errors`). They are named without their extension, so the same
// history matches whether they run compiled (dist/migrations/*.js) or from source under vitest (*.ts).
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import knexFactory, { type Knex } from 'knex';
import type { Logger } from '../logger.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** `migrations/` at the project root, from src/runtime (source) or dist/src/runtime (compiled). */
const MIGRATIONS_DIR = path.resolve(here, '..', '..', 'migrations');

interface MigrationModule {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

const migrationSource: Knex.MigrationSource<string> = {
  async getMigrations() {
    const files = await fs.readdir(MIGRATIONS_DIR);
    return files.filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts')).sort();
  },
  getMigrationName(file) {
    return file.replace(/\.(js|ts)$/, '');
  },
  async getMigration(file) {
    return (await import(pathToFileURL(path.join(MIGRATIONS_DIR, file)).href)) as MigrationModule;
  },
};

export function createKnex(databaseUrl: string, poolMax = 10, logger?: Logger): Knex {
  return knexFactory({
    client: 'pg',
    connection: { connectionString: databaseUrl, application_name: 'xyra-scheduler' },
    pool: { min: 0, max: poolMax },
    // knex prints "Connection Error: …" to the console for each pooled connection a restarting server closes;
    // the next query reconnects, and an outage is said once elsewhere (runtime/databaseOutage.ts).
    ...(logger ? { log: { warn: (m: string) => logger.debug({ component: 'knex' }, m), debug: () => undefined } } : {}),
  });
}

/** Apply pending migrations; returns the names applied in this call. */
export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource })) as [number, string[]];
  return applied;
}
