// `xyra migrate` / `npx dbos migrate`: create or upgrade our tables and the DBOS system database without
// launching the service, for deployments that migrate before starting replicas.
import { DBOS } from '@dbos-inc/dbos-sdk';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { dropOpsViews, installOpsViews } from '../ops/views.js';
import { withStartupLock } from './advisoryLock.js';
import { resolveDatabases } from './databases.js';
import { createKnex, migrateLatest } from './migrations.js';

export async function runMigrations(config: Config, logger: Logger): Promise<void> {
  const databases = await resolveDatabases(config, logger);
  const knex = createKnex(databases.appDatabaseUrl, 2);
  try {
    await withStartupLock(databases.appDatabaseUrl, async () => {
      const applied = await migrateLatest(knex);
      await dropOpsViews(databases.systemDatabaseUrl);
      await DBOS.migrate(databases.systemDatabaseUrl);
      await installOpsViews(databases.systemDatabaseUrl);
      logger.info({ applied }, applied.length ? 'app database migrated' : 'app database already up to date');
    });
  } finally {
    await knex.destroy();
    await databases.embedded?.release();
  }
}
