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

const MIGRATION_FILE = /\.(js|ts)$/;

/** Our migrations in `dir`, named without their extension (see the top of this file), in the order they apply. */
function migrationSource(dir: string): Knex.MigrationSource<string> {
  return {
    async getMigrations() {
      const files = await fs.readdir(dir);
      return files.filter((f) => MIGRATION_FILE.test(f) && !f.endsWith('.d.ts')).sort();
    },
    getMigrationName(file) {
      return file.replace(MIGRATION_FILE, '');
    },
    async getMigration(file) {
      return (await import(pathToFileURL(path.join(dir, file)).href)) as MigrationModule;
    },
  };
}

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

/**
 * True when the migrations recorded as applied are exactly those in `dir`: knex would have nothing to do. One
 * read, where knex's own `migrate.latest` takes ~0.1 s of every start-up (it loads every migration module and
 * checks or creates its two tables and its lock). Anything else (no table yet, a file not applied, or an applied
 * migration missing from `dir`, which knex refuses as a corrupt directory) is left to knex.
 */
async function migrationsCurrent(knex: Knex, dir: string): Promise<boolean> {
  const source = migrationSource(dir);
  const [files, applied] = await Promise.all([
    source.getMigrations([]),
    knex.raw<{ rows: Array<{ name: string }> }>('select name from knex_migrations').then(
      (r) => r.rows.map((row) => row.name),
      (e: unknown) => {
        if ((e as { code?: string }).code === '42P01') return undefined; // undefined_table: a fresh database
        throw e;
      },
    ),
  ]);
  if (!applied) return false;
  const onDisk = new Set(files.map((f) => source.getMigrationName(f)));
  return applied.length === onDisk.size && applied.every((name) => onDisk.has(name));
}

/** Apply pending migrations; returns the names applied in this call. `dir`: tests give their own. */
export async function migrateLatest(knex: Knex, dir = MIGRATIONS_DIR): Promise<string[]> {
  if (await migrationsCurrent(knex, dir)) return [];
  const [, applied] = (await knex.migrate.latest({ migrationSource: migrationSource(dir) })) as [number, string[]];
  return applied;
}
