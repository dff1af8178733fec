// Process entry: config → logger → service → signals. A bad environment exits 2 with one line.
import { loadConfig } from './config.js';
import { ConfigError, ExecutorConflictError } from './errors.js';
import { createLogger, redact } from './logger.js';
import { startService } from './service.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`xyra-scheduler: invalid configuration: ${e.message}\n`);
      process.exit(e.exitCode);
    }
    throw e;
  }
  const logger = createLogger(config.logLevel);
  let signals = 0;
  let service: Awaited<ReturnType<typeof startService>> | undefined;
  let stopping: Promise<void> | undefined;

  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(130);
    }
    logger.info({ signal }, 'shutting down');
    stopping = (async () => {
      await service?.stop();
      logger.info('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    service = await startService(config, logger);
  } catch (e) {
    if (e instanceof ExecutorConflictError) {
      logger.fatal({ executorId: e.executorId }, e.message);
    } else {
      const reason = redact(e instanceof Error ? e.message : String(e));
      logger.fatal({ err: redact(e instanceof Error ? (e.stack ?? e.message) : String(e)) }, `start-up failed: ${reason}`);
    }
    process.exit(1);
  }
  // A signal that arrived during start-up stops the service once it is up.
  if (stopping) await service.stop();
}

void main();
