// The failure policy: after BATCH_PAUSE_AFTER_FAILURES consecutive `failed` runs the schedule pauses
// itself, with the reason as its note. The count is failureStreak.ts's query over the runs on record; the decision
// runs in a workflow step under an advisory lock, so one failure streak produces one pause, whichever replica
// finishes the run.
import type pg from 'pg';
import { redact, type Logger } from '../logger.js';
import { recordConsecutiveFailures } from '../telemetry/metrics.js';
import { consecutiveFailures } from './failureStreak.js';
import { getScheduleRow, pauseScheduleRow } from './scheduleStore.js';
import { DEFAULT_SCHEDULE } from './slotContext.js';
import { type BatchRunOutput, type BatchStatus } from './status.js';

const POLICY_LOCK = 'xyra-scheduler:failure-policy';

export interface FailurePolicySettings {
  systemPool: pg.Pool;
  /** App database pool: the `schedules` row (threshold, the one pause path) and `schedule_events`. */
  appPool: pg.Pool;
  logger: Logger;
}

let settings: FailurePolicySettings | undefined;

/** Called once at start-up, before DBOS launches (the batch workflow's step reads it). */
export function configureFailurePolicy(s: FailurePolicySettings): void {
  settings = s;
}

export interface PolicyVerdict {
  consecutiveFailures: number;
  /** True when this run's outcome paused the schedule. */
  paused: boolean;
}

function pauseNote(failures: number, threshold: number, lastError: string | undefined): string {
  const error = lastError ? `; last error: ${redact(lastError).slice(0, 300)}` : '';
  return `paused by the failure policy after ${failures} consecutive failed runs (pause_after_failures=${threshold})${error}`;
}

/**
 * Applies the schedule's policy (`pause_after_failures`) to a run's final status: updates the gauge and, on
 * the failure that reaches the threshold, pauses the schedule through the store's one pause path (status,
 * audit row and NOTIFY in one transaction). Called from a step of the batch workflow, so it runs once per
 * run; a replay finds the schedule already paused (or resumed since, which restarted the count).
 */
export async function applyFailurePolicy(
  scheduleName: string,
  status: BatchStatus,
  skippedBy?: BatchRunOutput['skipped_reason'],
): Promise<PolicyVerdict> {
  if (!settings) throw new Error('failure policy used before configureFailurePolicy()');
  const s = settings;
  if (skippedBy) return { consecutiveFailures: -1, paused: false }; // our own skip: no news about the API
  if (status.status === 'completed' || status.status === 'skipped') {
    recordConsecutiveFailures(scheduleName, 0, new Date(status.scheduled_time));
    return { consecutiveFailures: 0, paused: false };
  }
  if (status.status !== 'failed') return { consecutiveFailures: -1, paused: false }; // 202: no outcome yet

  const lockClient = await s.systemPool.connect();
  try {
    await lockClient.query('begin');
    // Two replicas finishing failed runs at once must not both pause (nor record two pauses).
    await lockClient.query('select pg_advisory_xact_lock(hashtext($1))', [
      scheduleName === DEFAULT_SCHEDULE ? POLICY_LOCK : `${POLICY_LOCK}:${scheduleName}`,
    ]);
    const failures = await consecutiveFailures(lockClient, s.appPool, scheduleName);
    recordConsecutiveFailures(scheduleName, failures, new Date(status.scheduled_time), { fromHistory: true });
    let paused = false;
    const row = await getScheduleRow(s.appPool, scheduleName);
    const threshold = row?.pause_after_failures ?? 0;
    if (row && threshold > 0 && failures >= threshold && row.status === 'ACTIVE') {
      const note = pauseNote(failures, threshold, status.error);
      const result = await pauseScheduleRow(s.appPool, scheduleName, {
        note,
        by: 'failure_policy',
        details: { consecutive_failures: failures, workflow_id: status.workflow_id },
      });
      paused = result.changed;
      if (paused) {
        s.logger.error(
          { workflowId: status.workflow_id, consecutiveFailures: failures, pauseAfterFailures: threshold, note },
          'schedule paused by the failure policy',
        );
      }
    }
    await lockClient.query('commit');
    return { consecutiveFailures: failures, paused };
  } catch (e) {
    await lockClient.query('rollback').catch(() => undefined);
    throw e;
  } finally {
    lockClient.release();
  }
}
