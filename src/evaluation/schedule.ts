// Registers the batch job with DBOS after launch: its own queue (polled faster than the internal one, so
// scheduled→actual lag stays small) and the `evaluation-batch` schedule.
import { DBOS, type ScheduledWorkflowFn } from '@dbos-inc/dbos-sdk';
import type { Config } from '../config.js';
import { EvaluationBatch, SCHEDULE_NAME } from './evaluationBatch.js';

export const BATCH_QUEUE = 'evaluation-batch';

export async function applyEvaluationSchedule(config: Config): Promise<void> {
  await DBOS.registerQueue(BATCH_QUEUE, {
    minPollingIntervalMs: config.batch.queuePollMs,
    // Policy `all` runs every backfilled slot, one after another; otherwise runs may overlap and the
    // overlap guard answers "already in progress".
    globalConcurrency: config.batch.catchUp === 'all' ? 1 : undefined,
    onConflict: 'always_update',
  });
  await DBOS.applySchedules([
    {
      scheduleName: SCHEDULE_NAME,
      // The SDK types scheduled functions as returning void; ours returns its run summary, which DBOS
      // stores as the workflow output. The registered function must be passed itself, hence the cast.
      workflowFn: EvaluationBatch.trigger as unknown as ScheduledWorkflowFn,
      schedule: config.batch.cron,
      // Never the process's local zone (DBOS's default).
      cronTimezone: config.batch.timezone,
      // DBOS enqueues every slot missed while no replica ran; the catch-up policy then decides per slot.
      automaticBackfill: true,
      queueName: BATCH_QUEUE,
    },
  ]);
}
