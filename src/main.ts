// Process entry: signals first, then config → service → stop. A bad environment exits 2 with one line.
//
// SIGTERM/SIGINT (or Ctrl-C in the terminal, see terminalInterrupt.ts) at any moment ends with exit 0:
// during start-up it aborts start-up, which undoes what it had started (embedded Postgres included); once
// ready it drains in-flight workflows and stops. A second signal exits at once (130).
import { loadConfig } from './config.js';
import { ConfigError, ExecutorConflictError, StartupAbortedError } from './errors.js';
import { randomUUID } from 'node:crypto';
import { createLogger, errorDetail, redact } from './logger.js';
import { interceptTerminalInterrupt, restoreTerminal } from './runtime/terminalInterrupt.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './runtime/embeddedPostgres.js';
import type { Service } from './service.js';

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
  const startup = new AbortController();
  let service: Service | undefined;
  let signals = 0;

  const exit: (code: number) => never = (code) => {
    // Node resets the terminal at exit too; doing it first keeps the last log lines readable.
    restoreTerminal();
    process.exit(code);
  };
  const stopAndExit = async (svc: Service, code = 0) => {
    await svc.stop();
    logger.info('stopped');
    exit(code);
  };

  // Last line of defence: a bug that lets a promise reject unobserved or an exception escape must not kill
  // the process mid-workflow. A rejection left nothing half-done on the stack: log it and keep serving. An
  // uncaught exception may have: log it, drain in-flight workflows as on SIGTERM, and exit 1.
  process.on('unhandledRejection', (reason: unknown) => {
    logger.error(
      { errorId: randomUUID(), err: errorDetail(reason) },
      'unhandled promise rejection (a bug): logged, the service keeps running',
    );
  });
  let crashing = false;
  process.on('uncaughtException', (e: Error) => {
    logger.fatal(
      { errorId: randomUUID(), err: errorDetail(e) },
      'uncaught exception (a bug): draining, then exiting 1',
    );
    if (crashing) return;
    crashing = true;
    if (service) void stopAndExit(service, 1).catch(() => exit(1));
    else startup.abort(); // start-up unwinds what it started; a start-up failure exits 1 below
  });

  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting at once');
      exit(130);
    }
    if (service) {
      logger.info({ signal }, 'shutting down');
      void stopAndExit(service);
    } else {
      logger.info({ signal }, 'signal during start-up: stopping what was started');
      startup.abort(); // startService unwinds; the start-up path below exits
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  interceptTerminalInterrupt(() => onSignal('SIGINT'));

  // The embedded Postgres (no DATABASE_URL) takes ~0.25 s to come up, mostly waiting on its own processes, and
  // loading the service's modules (DBOS, knex, OpenTelemetry, ours) ~0.4 s of this thread: started first, it
  // comes up meanwhile. startService owns it from here (it releases it on stop or on a failed start-up).
  // Its steps before `pg_ctl start` (file lock, state, checks) need this thread, which loading modules would hold:
  // they go first.
  let embeddedStart: Promise<EmbeddedPostgres> | undefined;
  if (!config.databaseUrl) {
    let serverStarting!: () => void;
    const starting = new Promise<void>((resolve) => (serverStarting = resolve));
    embeddedStart = startEmbeddedPostgres(config.dataDir, logger, startup.signal, undefined, serverStarting);
    const settled = embeddedStart.then(
      () => undefined,
      () => undefined, // observed by startService; not an unhandled rejection meanwhile
    );
    await Promise.race([starting, settled]);
  }

  let started: Service;
  try {
    const { startService } = await import('./service.js').catch(async (e: unknown) => {
      // No startService to own the early Postgres: release it here (the start-up fails below all the same).
      await embeddedStart?.then(
        (embedded) => embedded.release(),
        () => undefined,
      );
      throw e;
    });
    started = await startService(config, logger, { signal: startup.signal, embeddedStart });
  } catch (e) {
    if (e instanceof StartupAbortedError) {
      logger.info('start-up interrupted: stopped');
      exit(crashing ? 1 : 0);
    }
    if (e instanceof ExecutorConflictError) {
      logger.fatal({ executorId: e.executorId }, e.message);
    } else {
      const reason = redact(e instanceof Error ? e.message : String(e));
      logger.fatal(
        { err: redact(e instanceof Error ? (e.stack ?? e.message) : String(e)) },
        `start-up failed: ${reason}`,
      );
    }
    exit(1);
  }
  service = started;
  // A signal that arrived after start-up's last checkpoint: stop the service it produced.
  if (startup.signal.aborted) await stopAndExit(started);
}

void main();
