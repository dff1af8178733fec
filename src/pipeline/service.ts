// The pipeline's part of the running service: configure the chunk workflow's dependencies before DBOS
// launches, register the `tasks` queue after (DBOS 5.x queues are registered after launch) at the speed the
// database's backlog calls for (pipeline/queuePolling.ts).
import { DBOS } from '@dbos-inc/dbos-sdk';
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { VERSION } from '../version.js';
import { applyQueueRegistrationNow } from '../runtime/dbosInternals.js';
import { IngestNoticeListener } from './ingestNotice.js';
import { DispatchSpeed } from './queuePolling.js';
import { configureTaskPipeline, TASKS_QUEUE } from './taskPipeline.js';

/** An insert waits at most this long for a table lock before the attempt fails and the step retries. */
export const INSERT_LOCK_TIMEOUT_MS = 1_000;

/** Fast polling of the tasks queue while it holds ENQUEUED chunks; below this the idle interval applies. */
export const BUSY_POLL_MS = 50;
/** While polling fast, the backlog is read again this often (one small query; idle replicas do not read it). */
const BACKLOG_RECHECK_MS = 2_000;

let speed: DispatchSpeed | undefined;
let log: Logger | undefined;

/**
 * True when the tasks queue holds chunks this process may dequeue: of its application version, or of none
 * (DBOS's queue runner takes both; a chunk enqueued without a version by an older `xyra ingest` still counts).
 */
async function tasksBacklog(): Promise<boolean> {
  const base = { queueName: TASKS_QUEUE, status: 'ENQUEUED' as const, loadInput: false, loadOutput: false };
  if ((await DBOS.listWorkflows({ ...base, applicationVersion: VERSION, limit: 1 })).length > 0) return true;
  const any = await DBOS.listWorkflows({ ...base, limit: 100 });
  return any.some((w) => !w.applicationVersion);
}

export function configurePipeline(config: Config, knex: Knex, logger: Logger): void {
  log = logger;
  speed = new DispatchSpeed({
    idleMs: config.pipeline.pollMs,
    busyMs: Math.min(BUSY_POLL_MS, config.pipeline.pollMs),
    recheckMs: BACKLOG_RECHECK_MS,
    hasBacklog: tasksBacklog,
    apply: (ms) => registerTasksQueue(config, ms),
    onError: (e) =>
      logger.warn(
        { err: e instanceof Error ? e.message : String(e) },
        'pipeline: could not read or apply the tasks queue speed',
      ),
  });
  const dispatch = speed;
  configureTaskPipeline({
    onChunkStart: () => dispatch.poke(),
    knex,
    logger,
    failIds: new Set(config.pipeline.failIds),
    stepMaxAttempts: config.pipeline.stepMaxAttempts,
    stepIntervalMs: config.pipeline.stepIntervalMs,
    stepBackoffRate: config.pipeline.stepBackoffRate,
    lockTimeoutMs: INSERT_LOCK_TIMEOUT_MS,
  });
  if (config.pipeline.failIds.length > 0) {
    logger.info({ failIds: config.pipeline.failIds }, 'pipeline: simulating transform failures for these record ids');
  }
}

/**
 * Registers the tasks queue at the speed its backlog calls for: a process that starts while chunks wait
 * (after a crash, or joining a running ingestion) polls fast at once. Returns the stop of the speed control.
 */
export async function registerPipelineQueue(config: Config, appDatabaseUrl: string): Promise<() => Promise<void>> {
  const dispatch = speed;
  if (!dispatch || !log) throw new Error('registerPipelineQueue before configurePipeline');
  // Listening before the backlog is read: chunks enqueued in between are seen by one or the other.
  const notices = new IngestNoticeListener(appDatabaseUrl, () => dispatch.poke(), log);
  await notices.start();
  await dispatch.check();
  if (dispatch.currentMs === undefined) await registerTasksQueue(config, config.pipeline.pollMs); // backlog unreadable: idle
  await reportOtherVersions();
  return async () => {
    dispatch.stop();
    await notices.stop();
  };
}

/**
 * Chunks of another application version are never dequeued here (DBOS runs a workflow only on its own version,
 * or on any when it has none): say so at start-up, loudly, instead of leaving them waiting in silence. Chunks of
 * this version enqueued before staging still run (they carry their records; taskPipeline.ts).
 */
async function reportOtherVersions(): Promise<void> {
  const waiting = await DBOS.listWorkflows({
    queueName: TASKS_QUEUE,
    status: ['ENQUEUED', 'PENDING'],
    limit: 1_000,
    loadInput: false,
    loadOutput: false,
  });
  const others = waiting.filter((w) => w.applicationVersion && w.applicationVersion !== VERSION);
  if (others.length === 0) return;
  log?.error(
    {
      count: others.length,
      versions: [...new Set(others.map((w) => w.applicationVersion))],
      version: VERSION,
      workflows: others.slice(0, 10).map((w) => w.workflowID),
    },
    'pipeline: chunk workflows of another application version wait in the tasks queue and will not run on this version: ' +
      'run that version until they finish, or cancel them and run `xyra ingest FILE --retry-cancelled` (it forks them onto this version)',
  );
}

async function registerTasksQueue(config: Config, pollMs: number): Promise<void> {
  if (!DBOS.isInitialized()) return; // shutting down
  const queue = await DBOS.registerQueue(TASKS_QUEUE, {
    workerConcurrency: config.pipeline.concurrency,
    minPollingIntervalMs: pollMs,
    onConflict: 'always_update',
  });
  // The row reaches every replica's queue runner at its next re-read (every few seconds); this one's at once
  // (also the first registration after launch, which the runner would otherwise meet only at that re-read).
  if (!applyQueueRegistrationNow(queue))
    log?.debug({ pollMs }, 'pipeline: tasks queue speed reaches the queue runner at its next re-read');
}
