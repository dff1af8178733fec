// Seeds a schedule's gauges from what is on record when a process starts, so a restarted replica exports
// the last completed slot, the failure streak and the pause state at once instead of nothing until its
// next run (an alert on "no completed run for 3 intervals" must not go quiet because a replica restarted).
import { z } from 'zod';
import { consecutiveFailures } from '../evaluation/failureStreak.js';
import { listScheduleEvents } from '../evaluation/scheduleEvents.js';
import type { Queryable } from '../runtime/databases.js';
import { runIdPattern } from '../evaluation/slotContext.js';
import {
  initScheduleMetrics,
  recordConsecutiveFailures,
  recordLastCompleted,
  recordLastMissed,
} from '../telemetry/metrics.js';
import { BATCH_RUNS_SELECT } from './batchRunsSql.js';

const seedSchema = z.object({
  last_completed: z.date().nullable(),
  last_outcome: z.date().nullable(),
  last_missed: z.date().nullable(),
});

// `last_outcome`: the newest run the failure streak counts (an outcome of the API), like failurePolicy.ts.
const SEED_SQL = `
select
  max(scheduled_time) filter (where status in ('completed', 'triggered')) as last_completed,
  max(scheduled_time) filter (where workflow_status in ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
    and skipped_reason is null and status in ('completed', 'triggered', 'failed', 'skipped')) as last_outcome,
  max(actual_time) filter (where skipped_reason = 'missed') as last_missed
from (${BATCH_RUNS_SELECT}) runs
where workflow_id ~ $1`;

export interface ScheduleMetricsSeed {
  systemDb: Queryable;
  appDb: Queryable;
  scheduleName: string;
}

/**
 * Seeds one schedule (the engine calls this through service.ts for each schedule it learns of, at start-up or
 * when one is created at runtime); only that schedule's runs are read. The pause state is not seeded here: the
 * engine records it from the store's row. Runs may record while this reads: the time gauges only move forward,
 * so a seed never overwrites what a run recorded meanwhile.
 */
export async function seedScheduleMetrics({ systemDb, appDb, scheduleName }: ScheduleMetricsSeed): Promise<void> {
  initScheduleMetrics(scheduleName);
  // Missed: a run skipped by the catch-up policy, or a summary of slots beyond the catch-up window.
  const [summary] = await listScheduleEvents(appDb, { scheduleName, kinds: ['missed_summary'], limit: 1 });
  if (summary) recordLastMissed(scheduleName, new Date(summary.at));
  const seed = seedSchema.parse((await systemDb.query(SEED_SQL, [runIdPattern(scheduleName)])).rows[0]);
  if (seed.last_missed) recordLastMissed(scheduleName, seed.last_missed);
  if (seed.last_completed) recordLastCompleted(scheduleName, seed.last_completed);
  if (seed.last_outcome) {
    recordConsecutiveFailures(
      scheduleName,
      await consecutiveFailures(systemDb, appDb, scheduleName),
      seed.last_outcome,
    );
  }
}
