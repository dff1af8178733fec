// The DBOS application name, and a DBOSClient for CLI commands. Clients must act as the same application the
// service registers as, or they would not see (nor own) its workflows, schedules and queues.
import { DBOSClient } from '@dbos-inc/dbos-sdk';
import { dbosLogger, type Logger } from '../logger.js';
import { DBOS_CONNECTION_NOISE } from './dbosInternals.js';

export const APP_NAME = 'xyra-scheduler';

/** Run `fn` with a client on the system database, destroyed afterwards whatever happens. */
export async function withDbosClient<T>(
  systemDatabaseUrl: string,
  logger: Logger,
  fn: (c: DBOSClient) => Promise<T>,
): Promise<T> {
  // DBOS logs each retry of a read during a database outage: debug here (`ingest --wait` says it once).
  const client = await DBOSClient.create({
    systemDatabaseUrl,
    applicationName: APP_NAME,
    logger: dbosLogger(logger, (msg) => DBOS_CONNECTION_NOISE.test(msg)),
  });
  try {
    return await fn(client);
  } finally {
    await client.destroy();
  }
}
