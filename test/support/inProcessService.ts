// The service started in the test's own process (real Postgres through DBOS, no HTTP server), with a pool on each
// of its databases for the test's own reads and writes. `stop()` ends the service and both pools.
import { PassThrough } from 'node:stream';
import pg from 'pg';
import type { Config } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { startService, type Service, type ServiceOptions } from '../../src/service.js';

export interface InProcessService {
  service: Service;
  appPool: pg.Pool;
  systemPool: pg.Pool;
  stop(): Promise<void>;
}

export async function startInProcessService(
  config: Config,
  options: ServiceOptions & { logger?: Logger; poolSize?: number } = {},
): Promise<InProcessService> {
  const { logger = createLogger('warn', new PassThrough()), poolSize = 4, ...serviceOptions } = options;
  const service = await startService(config, logger, { healthServer: false, ...serviceOptions });
  const appPool = new pg.Pool({ connectionString: service.databases.appDatabaseUrl, max: poolSize });
  const systemPool = new pg.Pool({ connectionString: service.databases.systemDatabaseUrl, max: poolSize });
  return {
    service,
    appPool,
    systemPool,
    stop: async () => {
      await service.stop();
      await Promise.all([appPool.end(), systemPool.end()]);
    },
  };
}
