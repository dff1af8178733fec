// Composes the running service: health server → databases → telemetry → Xyra API (or simulator) → DBOS
// launch (with our migrations, under a start-up lock) → queues and schedules. `stop()` undoes it in
// reverse, draining in-flight workflows first.
import { DBOS } from '@dbos-inc/dbos-sdk';
import type { Knex } from 'knex';
import pg from 'pg';
import type { Config } from './config.js';
import { StartupAbortedError } from './errors.js';
import { configureEvaluationBatch, firingResumedAt } from './evaluation/evaluationBatch.js';
import './evaluation/backfill.js'; // registers the backfill workflow before launch
import { ScheduleEngine } from './evaluation/engine.js';
import { reconcileEnvSchedule } from './evaluation/envSchedule.js';
import { configureFailurePolicy } from './evaluation/failurePolicy.js';
import { registerBatchQueue } from './evaluation/schedule.js';
import { takeOverDbosSchedule } from './evaluation/legacySchedule.js';
import { dbosLogger, registerSecret, registerUrlSecrets, type Logger } from './logger.js';
import { createApi } from './ops/api.js';
import { isLoopbackAddress, startHttpServer, type HttpServer } from './ops/httpServer.js';
import { createSchedulesApi } from './ops/schedulesApi.js';
import { applyRetentionSchedule, configureRetention } from './ops/retention.js';
import { seedScheduleMetrics } from './ops/scheduleMetrics.js';
import { dropOpsViews, installOpsViews } from './ops/views.js';
import { configurePipeline, registerPipelineQueue } from './pipeline/service.js';
import { XyraSimulator } from './simulator/server.js';
import { startTelemetry, type Telemetry } from './telemetry/metrics.js';
import { VERSION } from './version.js';
import { withStartupLock } from './runtime/advisoryLock.js';
import { APP_NAME } from './runtime/dbosClient.js';
import { assertExecutorIdFree, warnIfNotLatestVersion } from './runtime/executorGuard.js';
import {
  currentExecution,
  DBOS_CONNECTION_NOISE,
  DBOS_SLOT_START_RACE,
  executionOwnsWorkflow,
  recoverExecutorWorkflows,
  setDbRetryMaxBackoff,
} from './runtime/dbosInternals.js';
import { DatabaseOutage, isConnectionError } from './runtime/databaseOutage.js';
import { ExecutionFence, installExecutionFence } from './runtime/executionFence.js';
import { startFailover, type Failover } from './runtime/failover.js';
import { resolveDatabases, type DatabaseUrls } from './runtime/databases.js';
import type { EmbeddedPostgres } from './runtime/embeddedPostgres.js';
import { createKnex, migrateLatest } from './runtime/migrations.js';
import {
  installQueueRunnerWake,
  setDeadlineSweepInterval,
  setQueueMaintenanceInterval,
} from './runtime/dbosInternals.js';

/** DBOS's retry of a workflow's database operation backs off to at most this (its default: 60 s): see dbosInternals. */
const DBOS_DB_RETRY_MAX_BACKOFF_S = 2;

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
/** How often DBOS looks for workflows past their deadline (its default: every second; we set no deadlines). */
const DEADLINE_SWEEP_MS = 5_000;

export interface ServiceOptions {
  /** Apply the `evaluation-batch` schedule (tests that drive the workflow directly turn it off). */
  schedule?: boolean;
  /** Start the HTTP server (health, dashboard, `/api`) on config.port. */
  healthServer?: boolean;
  /** FENCE_EXIT: called when the old crash-only rule would stop the process (default with FENCE_EXIT=true: exit 1). */
  onFenced?: (reason: string) => void;
  /**
   * The embedded Postgres's start, begun by the caller before this module loaded (main.ts: the server comes up
   * while the modules load). Released with the rest on stop or on a failed start-up, whenever it settles.
   */
  embeddedStart?: Promise<EmbeddedPostgres>;
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
  for (const url of [config.databaseUrl, config.systemDatabaseUrl, config.xyraApiUrl, config.metrics.otlpEndpoint])
    registerUrlSecrets(url);
  const cleanups: Array<() => Promise<void>> = [];
  // Between start-up steps: a signal that arrived during a step stops start-up once that step is done.
  const checkpoint = () => {
    if (options.signal?.aborted) throw new StartupAbortedError();
  };
  const runCleanups = async () => {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((e: unknown) =>
        logger.error({ err: e instanceof Error ? e.message : String(e) }, 'shutdown step failed'),
      );
    }
  };

  const { embeddedStart } = options;
  // First in, so last out: whatever step fails, the server started for us stops after everything using it.
  if (embeddedStart)
    cleanups.push(() =>
      embeddedStart.then(
        (e) => e.release(),
        () => undefined, // a start that failed started nothing to release
      ),
    );

  try {
    // Telemetry before the HTTP server: its Prometheus handler is served there. It touches no database.
    const telemetry: Telemetry = await startTelemetry(config, logger, VERSION);
    cleanups.push(() => telemetry.shutdown());

    // Closed while the executor claim is unconfirmed: every step and the slot firing wait behind it.
    let fence: ExecutionFence | undefined;
    const outage = new DatabaseOutage(logger.child({ component: 'database' }));
    // pg-pool listens for errors only on idle clients: a connection that drops while we hold a client (the
    // overlap guard's gate, a transaction) would emit 'error' with no listener and end the process. Its
    // query in flight rejects anyway; the next user of a dead client finds out and reconnects.
    const guardPool = (p: pg.Pool) =>
      p.on('connect', (client) => client.on('error', (e) => poolError('held client')(e)));
    const poolError = (which: string) => (e: Error) => {
      if (isConnectionError(e)) outage.suspect();
      if (outage.active) logger.debug({ err: e.message }, `${which} pool error`);
      else logger.warn({ err: e.message }, `${which} pool error`);
    };

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
          // Fenced (database unreachable, claim unconfirmed): not ready, whatever else answers.
          if (fence && !fence.isOpen())
            return { ready: false, detail: { fenced: fence.reason ?? 'executor claim unconfirmed' } };
          const launched = DBOS.isInitialized();
          if (!launched || !knexForReadiness) return { ready: false, detail: { dbos: launched } };
          const [app, sys] = await Promise.all([
            knexForReadiness.raw('select 1').then(
              () => true,
              () => false,
            ),
            DBOS.listWorkflows({ limit: 1, loadInput: false, loadOutput: false }).then(
              () => true,
              () => false,
            ),
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
    const databases = await resolveDatabases(config, logger, options.signal, embeddedStart);
    if (databases.embedded && !embeddedStart) cleanups.push(() => databases.embedded!.release());
    checkpoint();

    let simulator: XyraSimulator | undefined;
    let apiUrl = config.xyraApiUrl;
    if (!apiUrl) {
      simulator = new XyraSimulator({ token: config.xyraApiToken });
      apiUrl = await simulator.start();
      cleanups.push(() => simulator!.stop());
      logger.info({ url: apiUrl }, 'XYRA_API_URL not set: started the built-in Xyra simulator');
    }

    const systemPool = new pg.Pool({
      connectionString: databases.systemDatabaseUrl,
      max: 4,
      application_name: 'xyra-scheduler',
    });
    systemPool.on('error', poolError('system database'));
    guardPool(systemPool);
    cleanups.push(() => systemPool.end());
    // Small pool on the app database: pause checks, failover's claims/heartbeats, the failure policy's schedule_events.
    const appPool = new pg.Pool({
      connectionString: databases.appDatabaseUrl,
      max: 4,
      application_name: 'xyra-scheduler',
    });
    appPool.on('error', poolError('app database'));
    guardPool(appPool);
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
    configureRetention({
      systemPool,
      appPool,
      retentionMs: config.historyRetentionMs,
      logger: logger.child({ component: 'retention' }),
    });

    const knex = createKnex(databases.appDatabaseUrl, undefined, logger);
    knexForReadiness = knex;
    cleanups.push(() => knex.destroy());
    configurePipeline(config, knex, logger.child({ component: 'pipeline' }));

    checkpoint();
    // Before launch: launch starts recovering this executor's workflows at once.
    // A dropped claim connection closes the fence at once; the heartbeat re-takes the claim or declares an outage.
    const claim = await assertExecutorIdFree(
      databases.appDatabaseUrl,
      config.executorId,
      logger,
      undefined,
      (reason) => {
        outage.suspect();
        fence?.close(`executor claim connection lost: ${reason}`);
      },
    );
    cleanups.push(() => claim.release()); // released after DBOS.shutdown (cleanups run in reverse)
    // Open now (the claim was just taken); failover's heartbeat keeps it open, or closes it.
    fence = new ExecutionFence({
      maxUnconfirmedMs: config.failoverAfterMs / 2,
      currentExecution,
      ownsWorkflow: (e) => executionOwnsWorkflow(systemPool, e.workflowId, e.ownerXid),
    });
    installExecutionFence(fence);
    cleanups.push(async () => installExecutionFence(undefined));
    if (!setDbRetryMaxBackoff(DBOS_DB_RETRY_MAX_BACKOFF_S))
      logger.warn('DBOS retry settings changed shape: its database retries back off to 60 s');

    // Idle cost: DBOS's once-a-second queue maintenance is half of an idle replica's commits (design.md).
    if (!setQueueMaintenanceInterval(QUEUE_MAINTENANCE_MS))
      logger.warn('DBOS queue runner changed shape: queue maintenance stays at 1 s');
    if (!installQueueRunnerWake())
      logger.warn('DBOS queue runner changed shape: a backlog announced by `xyra ingest` waits for its next poll');
    if (!setDeadlineSweepInterval(DEADLINE_SWEEP_MS))
      logger.warn('DBOS workflow timeout settings changed shape: its deadline sweep stays at 1 s');
    DBOS.setConfig({
      name: APP_NAME,
      systemDatabaseUrl: databases.systemDatabaseUrl,
      applicationVersion: VERSION,
      executorID: config.executorId,
      // Its per-retry and per-poll connection warnings are debug while an outage is on (said once, by `outage`).
      // A connection error DBOS reports is a first sign (it often comes before our heartbeat notices).
      logger: dbosLogger(logger, (msg) => {
        if (isConnectionError(new Error(msg))) outage.suspect();
        return DBOS_CONNECTION_NOISE.test(msg) || DBOS_SLOT_START_RACE.test(msg) || outage.active;
      }),
      // DBOS's own scheduler runs only the retention job (our schedules are the engine's): how often it re-reads
      // its schedule table. Schedule edits reach our engine by NOTIFY instead.
      schedulerPollingIntervalMs: 5_000,
    });
    let launched = false;
    cleanups.push(async () => {
      if (!launched) return;
      logger.info({ waitMs: config.shutdownTimeoutMs }, 'draining: waiting for in-flight workflows');
      await DBOS.shutdown({ workflowCompletionTimeoutMS: config.shutdownTimeoutMs });
      // Heartbeats go on through the drain: the fence stays open for the runs finishing, and closes if it must.
      await failover?.stop();
    });
    checkpoint();
    await withStartupLock(
      databases.appDatabaseUrl,
      async () => {
        // Three independent steps, each its own connection's round trips: side by side, and all settled before
        // going on (a failed one never leaves another still running under the lock); then the first failure, if any.
        const steps = [
          warnIfNotLatestVersion(databases.systemDatabaseUrl, APP_NAME, VERSION, logger),
          // Our views read dbos.* tables; Postgres would refuse a DBOS migration that alters a column under them.
          dropOpsViews(databases.systemDatabaseUrl),
          migrateLatest(knex),
        ] as const;
        await Promise.allSettled(steps);
        const [, , applied] = await Promise.all(steps);
        if (applied.length > 0) logger.info({ applied }, 'app database migrated');
        checkpoint();
        // An older version's DBOS schedule: its last fired slot becomes ours, and it is gone before DBOS's
        // scheduler could start a loop for it (docs/design.md, "Upgrading from DBOS's scheduler").
        await takeOverDbosSchedule(systemPool, appPool, config, logger);
        await DBOS.launch();
        launched = true;
        await installOpsViews(databases.systemDatabaseUrl);
      },
      options.signal,
    );

    checkpoint();
    failover = await startFailover({
      claim,
      appPool,
      systemPool,
      applicationName: APP_NAME,
      version: VERSION,
      failoverAfterMs: config.failoverAfterMs,
      recover: recoverExecutorWorkflows,
      fence,
      outage,
      // FENCE_EXIT=true only: no drain, draining would keep executing.
      onFenced: options.onFenced ?? (config.fenceExit ? () => process.exit(1) : undefined),
      logger: logger.child({ component: 'failover' }),
    });
    // Stopped after DBOS's drain (see its cleanup above), not before it.

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
        pool.on('error', poolError('dashboard database'));
        guardPool(pool);
        cleanups.push(() => pool.end());
        return pool;
      };
      const apiPools = { systemPool: apiPool(databases.systemDatabaseUrl), appPool: apiPool(databases.appDatabaseUrl) };
      health.attachApi(createApi({ config, ...apiPools }));
      health.attachRoutes(
        createSchedulesApi({ config, ...apiPools, logger: logger.child({ component: 'schedules-api' }) }),
      );
    }

    const stopDispatchSpeed = await registerPipelineQueue(config, databases.appDatabaseUrl);
    cleanups.push(stopDispatchSpeed);
    checkpoint();
    await registerBatchQueue(config);
    if (options.schedule !== false) {
      // The gauges an alert reads, seeded from the history for every schedule the engine learns of (at start-up
      // or created at runtime): in the background, since a long history takes seconds (2.4 s for 20,000 runs)
      // and must not delay the first slot; best effort, metrics never stop a start-up.
      const seeding = new Set<Promise<void>>();
      cleanups.push(() => Promise.all(seeding).then(() => undefined)); // after the engine stops, before the pools close
      const seed = (scheduleName: string): void => {
        const p = seedScheduleMetrics({ systemDb: systemPool, appDb: appPool, scheduleName })
          .catch((e: unknown) =>
            logger.warn(
              { schedule: scheduleName, err: e instanceof Error ? e.message : String(e) },
              'metrics: could not seed the schedule gauges',
            ),
          )
          .finally(() => seeding.delete(p));
        seeding.add(p);
      };
      // One engine owns the slots (docs/design.md, "One engine"): missed slots first, by the spec they belong
      // to (a changed BATCH_* is an edit that takes effect after them), then the declaration, then firing.
      // Fenced: it fires nothing, and catches up every schedule's slots in between when the fence opens.
      const engine = new ScheduleEngine({
        appPool,
        systemPool,
        appDatabaseUrl: databases.appDatabaseUrl,
        logger: logger.child({ component: 'engine' }),
        onScheduleLearned: seed,
        fence,
        connectionLost: (e) => {
          if (isConnectionError(e)) outage.suspect();
          return outage.active;
        },
        onResumed: firingResumedAt,
        share: () => {
          const live = failover?.liveExecutors() ?? [config.executorId];
          return { index: live.indexOf(config.executorId), count: live.length };
        },
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
        // The process's own start: slots due before it were missed while no process ran (catch-up decides on it).
        upSince: new Date(performance.timeOrigin).toISOString(),
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
