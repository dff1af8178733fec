// Refuses a second live replica with the same EXECUTOR_ID (DBOS recovery would let both run one
// workflow), and warns when this replica's code version is not the latest one registered.
//
// The claim is a session-level advisory lock held on a dedicated connection for the process lifetime:
// Postgres drops it when the process dies, however it dies, so a crashed replica never blocks its own
// restart. It is taken in the app database because it must be held before DBOS launches (launch starts
// recovering this executor's workflows at once) and the system database may not exist yet then; the
// app and system databases of one deployment are a fixed pair.
import pg from 'pg';
import { ExecutorConflictError } from '../errors.js';
import type { Logger } from '../logger.js';

const LOCK_NAMESPACE = 'xyra-scheduler:executor';

export interface ExecutorClaim {
  release(): Promise<void>;
}

export async function assertExecutorIdFree(appDatabaseUrl: string, executorId: string, logger: Logger): Promise<ExecutorClaim> {
  const client = new pg.Client({
    connectionString: appDatabaseUrl,
    application_name: 'xyra-scheduler-executor-claim',
    keepAlive: true,
  });
  await client.connect();
  let released = false;
  client.on('error', (e) => {
    // The claim is gone with the connection; another replica with this ID could now start.
    if (!released) logger.error({ err: e.message, executorId }, 'lost the executor-ID claim connection');
  });
  const { rows } = await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1), hashtext($2)) as ok', [
    LOCK_NAMESPACE,
    executorId,
  ]);
  if (!rows[0]?.ok) {
    await client.end().catch(() => undefined);
    throw new ExecutorConflictError(executorId);
  }
  return {
    async release() {
      if (released) return;
      released = true;
      await client.end().catch(() => undefined);
    },
  };
}

/**
 * Warns when another version of the app is registered as the latest: DBOS enqueues scheduled slots for
 * the latest version only, and recovers a replica's work only on the same version. Reads the system
 * database directly so it can run before launch; a system database not created yet has no versions.
 */
export async function warnIfNotLatestVersion(
  systemDatabaseUrl: string,
  applicationName: string,
  version: string,
  logger: Logger,
): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: systemDatabaseUrl, application_name: 'xyra-scheduler-version-check' });
  try {
    await client.connect();
    const { rows } = await client.query<{ version_name: string }>(
      `select version_name from dbos.application_versions
       where application_name = $1 or application_name is null
       order by version_timestamp desc limit 1`,
      [applicationName],
    );
    const latest = rows[0]?.version_name;
    if (latest !== undefined && latest !== version) {
      logger.warn(
        { version, latestVersion: latest },
        `this replica runs version ${version} but the latest registered version is ${latest}: ` +
          'scheduled slots go to the latest version, and workflows of other versions are not recovered here',
      );
    }
    return latest;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === '3D000' || code === '42P01' || code === '3F000') return undefined; // no system database/schema yet
    throw e;
  } finally {
    await client.end().catch(() => undefined);
  }
}
