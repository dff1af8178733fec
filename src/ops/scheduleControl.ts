// Schedule control through DBOSClient: the CLI only writes to the system database; the running
// service's scheduler and queue workers act on it (schedule edits are polled every 5 s).
import type { DBOSClient } from '@dbos-inc/dbos-sdk';
import { TimeMatcher } from '../runtime/dbosInternals.js';
import { SCHEDULE_NAME } from '../evaluation/evaluationBatch.js';
import { BATCH_STATUS_EVENT, batchStatusSchema, type BatchStatus } from '../evaluation/status.js';

export interface ScheduleState {
  name: string;
  cron: string;
  status: string;
  last_fired_at: string | null;
  next_slot: string | null;
  queue: string | null;
  automatic_backfill: boolean;
}

export async function scheduleState(client: DBOSClient): Promise<ScheduleState> {
  const s = await client.getSchedule(SCHEDULE_NAME);
  if (!s) throw new Error(`schedule "${SCHEDULE_NAME}" not found: has the service been started against this database?`);
  let next: string | null = null;
  if (s.status === 'ACTIVE') {
    const matcher = new TimeMatcher(s.schedule, s.cronTimezone ?? undefined);
    const at = matcher.nextWakeupTime(Date.now());
    next = matcher.match(at) ? at.toISOString() : null;
  }
  return {
    name: s.scheduleName,
    cron: s.schedule,
    status: s.status,
    last_fired_at: s.lastFiredAt,
    next_slot: next,
    queue: s.queueName,
    automatic_backfill: s.automaticBackfill,
  };
}

/** Enqueues a run now, outside the slot sequence (ID `sched-evaluation-batch-trigger-<ISO>`). */
export async function triggerNow(client: DBOSClient): Promise<string> {
  const handle = await client.triggerSchedule(SCHEDULE_NAME);
  return handle.workflowID;
}

/** Waits for the run's final event; null if it did not finish within the timeout. */
export async function waitForOutcome(client: DBOSClient, workflowId: string, timeoutMs: number): Promise<BatchStatus | null> {
  const handle = client.retrieveWorkflow(workflowId);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await handle.getStatus();
    if (status && !['ENQUEUED', 'PENDING', 'DELAYED'].includes(status.status)) break;
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
  const event = await client.getEvent<unknown>(workflowId, BATCH_STATUS_EVENT, 0);
  return event === null ? null : batchStatusSchema.parse(event);
}
