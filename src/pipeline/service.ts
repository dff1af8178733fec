// The pipeline's part of the running service: configure the chunk workflow's dependencies before DBOS
// launches, register the `tasks` queue after (DBOS 5.x queues are registered after launch).
import { DBOS } from '@dbos-inc/dbos-sdk';
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { configureTaskPipeline, TASKS_QUEUE } from './taskPipeline.js';

/** An insert waits at most this long for a table lock before the attempt fails and the step retries. */
export const INSERT_LOCK_TIMEOUT_MS = 1_000;

export function configurePipeline(config: Config, knex: Knex, logger: Logger): void {
  configureTaskPipeline({
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

export async function registerPipelineQueue(config: Config): Promise<void> {
  await DBOS.registerQueue(TASKS_QUEUE, {
    workerConcurrency: config.pipeline.concurrency,
    minPollingIntervalMs: config.pipeline.pollMs,
    onConflict: 'always_update',
  });
}
