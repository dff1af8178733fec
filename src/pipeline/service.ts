// The pipeline's part of the running service: configure the chunk workflow's dependencies before DBOS
// launches, register the `tasks` queue after (DBOS 5.x queues are registered after launch).
import { DBOS } from '@dbos-inc/dbos-sdk';
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { pollQueueFasterNow } from '../runtime/dbosInternals.js';
import { AdaptivePolling } from './queuePolling.js';
import { configureTaskPipeline, TASKS_QUEUE } from './taskPipeline.js';

/** An insert waits at most this long for a table lock before the attempt fails and the step retries. */
export const INSERT_LOCK_TIMEOUT_MS = 1_000;

/** Fast polling of the tasks queue while chunks run; below this the idle interval applies. */
export const BUSY_POLL_MS = 50;
/** Back to idle polling after this long without a chunk starting on this replica. */
const BUSY_COOL_DOWN_MS = 10_000;

let polling: AdaptivePolling | undefined;

export function configurePipeline(config: Config, knex: Knex, logger: Logger): void {
  polling = new AdaptivePolling({
    idleMs: config.pipeline.pollMs,
    busyMs: Math.min(BUSY_POLL_MS, config.pipeline.pollMs),
    coolDownMs: BUSY_COOL_DOWN_MS,
    apply: (ms) => registerTasksQueue(config, ms),
    onError: (e) => logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'pipeline: could not change the tasks queue polling'),
  });
  const adaptive = polling;
  configureTaskPipeline({
    onChunkStart: () => adaptive.noteActivity(),
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

/** Registers the tasks queue polled at the idle interval (PIPELINE_POLL_MS); chunks speed it up while they run. */
export async function registerPipelineQueue(config: Config): Promise<void> {
  await registerTasksQueue(config, config.pipeline.pollMs);
}

async function registerTasksQueue(config: Config, pollMs: number): Promise<void> {
  if (!DBOS.isInitialized()) return; // shutting down
  // Speeding up takes effect at once on this replica; others follow when DBOS re-reads the queue row.
  if (pollMs < config.pipeline.pollMs) pollQueueFasterNow(TASKS_QUEUE, pollMs);
  await DBOS.registerQueue(TASKS_QUEUE, {
    workerConcurrency: config.pipeline.concurrency,
    minPollingIntervalMs: pollMs,
    onConflict: 'always_update',
  });
}
