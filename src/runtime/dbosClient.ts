// The DBOS application name, and a DBOSClient for CLI commands. Clients must act as the same application the
// service registers as, or they would not see (nor own) its workflows, schedules and queues.
import { DBOSClient } from '@dbos-inc/dbos-sdk';
import { dbosLogger, type Logger } from '../logger.js';
import { DBOS_CONNECTION_NOISE } from './dbosInternals.js';

export const APP_NAME = 'xyra-scheduler';

/** A client on the system database; the caller destroys it. */
export function createDbosClient(systemDatabaseUrl: string, logger: Logger): Promise<DBOSClient> {
  // DBOS logs each retry of a read during a database outage: debug here (`ingest --wait` says it once).
  return DBOSClient.create({
    systemDatabaseUrl,
    applicationName: APP_NAME,
    logger: dbosLogger(logger, (msg) => DBOS_CONNECTION_NOISE.test(msg)),
  });
}

/** Run `fn` with a client on the system database, destroyed afterwards whatever happens. */
export async function withDbosClient<T>(
  systemDatabaseUrl: string,
  logger: Logger,
  fn: (c: DBOSClient) => Promise<T>,
): Promise<T> {
  const client = await createDbosClient(systemDatabaseUrl, logger);
  try {
    return await fn(client);
  } finally {
    await client.destroy();
  }
}
