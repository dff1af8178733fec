// Composes the running service: health server → databases → telemetry → Xyra API (or simulator) → DBOS
// launch (with our migrations, under a start-up lock) → queues and schedules. `stop()` undoes it in
// reverse, draining in-flight workflows first.
import { DBOS } from '@dbos-inc/dbos-sdk';
import type { Knex } from 'knex';
import pg from 'pg';
import type { Config } from './config.js';
import { StartupAbortedError } from './errors.js';
import { configureEvaluationBatch } from './evaluation/evaluationBatch.js';
import './evaluation/backfill.js'; // registers the backfill workflow before launch
import { ScheduleEngine } from './evaluation/engine.js';
import { reconcileEnvSchedule } from './evaluation/envSchedule.js';
import { configureFailurePolicy } from './evaluation/failurePolicy.js';
import { registerBatchQueue } from './evaluation/schedule.js';
import { dbosLogger, redact, registerSecret, registerUrlSecrets, type Logger } from './logger.js';
import { createApi } from './ops/api.js';
import { isLoopbackAddress, startHttpServer, type HttpServer } from './ops/httpServer.js';
import { createSchedulesApi } from './ops/schedulesApi.js';
import { applyRetentionSchedule, configureRetention } from './ops/retention.js';
import { dropOpsViews, installOpsViews } from './ops/views.js';
import { configurePipeline, registerPipelineQueue } from './pipeline/service.js';
import { XyraSimulator } from './simulator/server.js';
import { startTelemetry, type Telemetry } from './telemetry/metrics.js';
import { VERSION } from './version.js';
import { withStartupLock } from './runtime/advisoryLock.js';
import { APP_NAME } from './runtime/dbosClient.js';
import { assertExecutorIdFree, warnIfNotLatestVersion } from './runtime/executorGuard.js';
import { recoverExecutorWorkflows } from './runtime/dbosInternals.js';
import { startFailover, type Failover } from './runtime/failover.js';
import { resolveDatabases, type DatabaseUrls } from './runtime/databases.js';
import { createKnex, migrateLatest } from './runtime/migrations.js';
import { setQueueMaintenanceInterval } from './runtime/dbosInternals.js';

/** Every `/api` statement is cancelled after this: a page never holds a connection longer. */
const API_STATEMENT_TIMEOUT_MS = 5_000;

/**
 * Postgres's JIT compiles the dashboard's short reads for seconds (its cost estimate for a created_at bound it
 * cannot see at plan time is high): /api/schedule took 2.8 s, of which 2.2 s JIT and 63 ms execution. Added to
 * the URL's own `options` parameter (the system database URL carries one, and it would win over a pool option).
 */
function withJitOff(url: string): string {
  const u = new URL(url);
  const options = u.searchParams.get('options');
  u.searchParams.set('options', `${options ? `${options} ` : ''}-c jit=off`);
  return u.toString();
}

/** How often DBOS re-reads queue rows and promotes delayed workflows (its default: every second). */
const QUEUE_MAINTENANCE_MS = 5_000;

export interface ServiceOptions {
  /** Apply the `evaluation-batch` schedule (tests that drive the workflow directly turn it off). */
  schedule?: boolean;
  /** Start the HTTP server (health, dashboard, `/api`) on config.port. */
  healthServer?: boolean;
  /** This replica lost its executor claim for good: stop executing at once (default: exit 1, no drain). */
  onFenced?: (reason: string) => void;
  /**
   * Aborted by a SIGTERM/SIGINT before ready: start-up stops at the next step, undoes what it started (in
   * reverse, the embedded Postgres included) and rejects with StartupAbortedError.
   */
  signal?: AbortSignal;
}

export interface Service {
  config: Config;
  databases: DatabaseUrls;
  knex: Knex;
  apiUrl: string;
  simulator?: XyraSimulator;
  health?: HttpServer;
  stop(): Promise<void>;
}

export async function startService(config: Config, logger: Logger, options: ServiceOptions = {}): Promise<Service> {
  const startedAt = Date.now();
  registerSecret(config.xyraApiToken);
  registerSecret(config.dashboardToken);
  registerSecret(config.adminToken);
  // Credentials inside any configured URL (the database ones are registered again once resolved).
  for (const url of [config.databaseUrl, config.systemDatabaseUrl, config.xyraApiUrl, config.metrics.otlpEndpoint]) registerUrlSecrets(url);
  const cleanups: Array<() => Promise<void>> = [];
  // Between start-up steps: a signal that arrived during a step stops start-up once that step is done.
  const checkpoint = () => {
    if (options.signal?.aborted) throw new StartupAbortedError();
  };
  const runCleanups = async () => {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((e: unknown) => logger.error({ err: e instanceof Error ? e.message : String(e) }, 'shutdown step failed'));
    }
  };

  try {
    // Telemetry before the HTTP server: its Prometheus handler is served there. It touches no database.
    const telemetry: Telemetry = startTelemetry(config, logger, VERSION);
    cleanups.push(() => telemetry.shutdown());

    // First, so a taken PORT fails before any database work, and /healthz answers during a long start-up
    // (recovery, migrations) while /readyz says 503 until DBOS is launched.
    let knexForReadiness: Knex | undefined;
    let health: HttpServer | undefined;
    if (options.healthServer !== false) {
      health = await startHttpServer(config.port, {
        dashboardToken: config.dashboardToken,
        host: config.host,
        allowedHosts: config.allowedHosts,
        logger: logger.child({ component: 'http' }),
        checkReady: async () => {
          const launched = DBOS.isInitialized();
          if (!launched || !knexForReadiness) return { ready: false, detail: { dbos: launched } };
          const [app, sys] = await Promise.all([
            knexForReadiness.raw('select 1').then(() => true, () => false),
            DBOS.listWorkflows({ limit: 1, loadInput: false, loadOutput: false }).then(() => true, () => false),
          ]);
          return { ready: app && sys, detail: { dbos: launched, appDatabase: app, systemDatabase: sys } };
        },
      });
      const server = health;
      cleanups.push(() => server.close());
      if (config.dashboardToken === undefined && !isLoopbackAddress(config.host)) {
        logger.warn(
          { host: config.host, port: server.port },
          'SECURITY: /api is served on a non-loopback address without DASHBOARD_TOKEN: anyone who reaches this port reads the schedule, runs and datasets (dataset records are withheld). Set DASHBOARD_TOKEN, or HOST=127.0.0.1',
        );
      }
      if (telemetry.metricsHandler) server.attachMetrics(telemetry.metricsHandler);
    }

    checkpoint();
    const databases = await resolveDatabases(config, logger, options.signal);
    if (databases.embedded) cleanups.push(() => databases.embedded!.release());
    checkpoint();

    let simulator: XyraSimulator | undefined;
    let apiUrl = config.xyraApiUrl;
    if (!apiUrl) {
      simulator = new XyraSimulator({ token: config.xyraApiToken });
      apiUrl = await simulator.start();
      cleanups.push(() => simulator!.stop());
      logger.info({ url: apiUrl }, 'XYRA_API_URL not set: started the built-in Xyra simulator');
    }

    const systemPool = new pg.Pool({ connectionString: databases.systemDatabaseUrl, max: 4, application_name: 'xyra-scheduler' });
    systemPool.on('error', (e) => logger.warn({ err: e.message }, 'system database pool error'));
    cleanups.push(() => systemPool.end());
    // Small pool on the app database: pause checks, failover's claims/heartbeats, the failure policy's schedule_events.
    const appPool = new pg.Pool({ connectionString: databases.appDatabaseUrl, max: 4, application_name: 'xyra-scheduler' });
    appPool.on('error', (e) => logger.warn({ err: e.message }, 'app database pool error'));
    cleanups.push(() => appPool.end());

    // Failover starts after launch; until then every executor counts as alive (runs block, as before).
    let failover: Failover | undefined;
    configureEvaluationBatch({
      systemPool,
      appPool,
      apiUrl,
      apiToken: config.xyraApiToken,
      batchSizeLimit: config.batch.sizeLimit,
      timeoutMs: config.xyra.timeoutMs,
      connectTimeoutMs: config.xyra.connectTimeoutMs,
      maxAttempts: config.xyra.maxAttempts,
      backoffBaseMs: config.xyra.backoffBaseMs,
      backoffMaxMs: config.xyra.backoffMaxMs,
      isExecutorAlive: (id) => failover?.isExecutorAlive(id) ?? Promise.resolve(true),
      logger: logger.child({ component: 'evaluation' }),
    });

    configureFailurePolicy({ systemPool, appPool, logger: logger.child({ component: 'failure-policy' }) });
    configureRetention({ systemPool, retentionMs: config.historyRetentionMs, logger: logger.child({ component: 'retention' }) });

    const knex = createKnex(databases.appDatabaseUrl);
    knexForReadiness = knex;
    cleanups.push(() => knex.destroy());
    configurePipeline(config, knex, logger.child({ component: 'pipeline' }));

    checkpoint();
    // Before launch: launch starts recovering this executor's workflows at once.
    const claim = await assertExecutorIdFree(databases.appDatabaseUrl, config.executorId, logger);
    cleanups.push(() => claim.release()); // released after DBOS.shutdown (cleanups run in reverse)

    // Idle cost: DBOS's once-a-second queue maintenance is half of an idle replica's commits (design.md).
    if (!setQueueMaintenanceInterval(QUEUE_MAINTENANCE_MS)) logger.warn('DBOS queue runner changed shape: queue maintenance stays at 1 s');
    DBOS.setConfig({
      name: APP_NAME,
      systemDatabaseUrl: databases.systemDatabaseUrl,
      applicationVersion: VERSION,
      executorID: config.executorId,
      logger: dbosLogger(logger),
      // Pause/resume and schedule edits made by the CLI are picked up within this interval.
      schedulerPollingIntervalMs: 5_000,
    });
    let launched = false;
    cleanups.push(async () => {
      if (!launched) return;
      logger.info({ waitMs: config.shutdownTimeoutMs }, 'draining: waiting for in-flight workflows');
      await DBOS.shutdown({ workflowCompletionTimeoutMS: config.shutdownTimeoutMs });
    });
    checkpoint();
    await withStartupLock(databases.appDatabaseUrl, async () => {
      await warnIfNotLatestVersion(databases.systemDatabaseUrl, APP_NAME, VERSION, logger);
      // Our views read dbos.* tables; Postgres would refuse a DBOS migration that alters a column under them.
      await dropOpsViews(databases.systemDatabaseUrl);
      const applied = await migrateLatest(knex);
      if (applied.length > 0) logger.info({ applied }, 'app database migrated');
      checkpoint();
      await DBOS.launch();
      launched = true;
      await installOpsViews(databases.systemDatabaseUrl);
    }, options.signal);

    checkpoint();
    failover = await startFailover({
      claim,
      appPool,
      systemPool,
      applicationName: APP_NAME,
      version: VERSION,
      failoverAfterMs: config.failoverAfterMs,
      recover: recoverExecutorWorkflows,
      onFenced: options.onFenced ?? (() => process.exit(1)), // no drain: draining would keep executing
      logger: logger.child({ component: 'failover' }),
    });
    const started = failover;
    cleanups.push(() => started.stop());

    if (health) {
      // The dashboard's API and /api/schedules: their own small pools so a slow page never starves the workflows
      // (the system pool fires slots and gates batches), and every statement bounded by a timeout. Schedule
      // changes are short transactions on the app database (store row + audit + NOTIFY): they run here too.
      const apiPool = (url: string) => {
        const pool = new pg.Pool({
          connectionString: withJitOff(url),
          max: 2,
          application_name: 'xyra-dashboard',
          statement_timeout: API_STATEMENT_TIMEOUT_MS,
          connectionTimeoutMillis: API_STATEMENT_TIMEOUT_MS,
        });
        pool.on('error', (e) => logger.warn({ err: redact(e.message) }, 'dashboard database pool error'));
        cleanups.push(() => pool.end());
        return pool;
      };
      const apiPools = { systemPool: apiPool(databases.systemDatabaseUrl), appPool: apiPool(databases.appDatabaseUrl) };
      health.attachApi(createApi({ config, ...apiPools }));
      health.attachRoutes(createSchedulesApi({ config, ...apiPools, logger: logger.child({ component: 'schedules-api' }) }));
    }

    const stopDispatchSpeed = await registerPipelineQueue(config);
    cleanups.push(stopDispatchSpeed);
    checkpoint();
    await registerBatchQueue(config);
    if (options.schedule !== false) {
      // One engine owns the slots (docs/design.md, "One engine"): missed slots first, by the spec they belong
      // to (a changed BATCH_* is an edit that takes effect after them), then the declaration, then firing.
      const engine = new ScheduleEngine({
        appPool,
        systemPool,
        appDatabaseUrl: databases.appDatabaseUrl,
        logger: logger.child({ component: 'engine' }),
      });
      const now = new Date();
      await engine.catchUp(now);
      await reconcileEnvSchedule(appPool, config, logger, now);
      await engine.start(now);
      cleanups.push(() => engine.stop()); // stops first: no new slot starts during the drain
    } else {
      await reconcileEnvSchedule(appPool, config, logger);
    }
    checkpoint();
    await applyRetentionSchedule(config.historyRetentionMs);

    logger.info(
      {
        version: VERSION,
        executorId: config.executorId,
        cron: config.batch.cron,
        catchUp: config.batch.catchUp,
        timezone: config.batch.timezone,
        healthPort: health?.port,
        ms: Date.now() - startedAt,
      },
      'xyra-scheduler ready',
    );

    let stopped = false;
    return {
      config,
      databases,
      knex,
      apiUrl,
      simulator,
      health,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        health?.setDraining();
        await runCleanups();
      },
    };
  } catch (e) {
    await runCleanups();
    throw e;
  }
}
