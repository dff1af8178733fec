// What the precise firing does at a slot. DBOS's schedule stays the source of truth: the run gets the very
// ID DBOS would give it (`sched-evaluation-batch-<ISO>`) and its `schedule_name`, so DBOS's own (jittered,
// later) firing finds it in its idempotency check and skips it, `dbos` tools list it as a scheduled run,
// and `last_fired_at` moves past it so no later backfill re-enqueues it. The run starts in this process at
// once (no queue poll in between); when several replicas fire the same slot, DBOS's workflow-status insert
// lets exactly one of them execute it. The run is started FIRE_LEAD_MS early and waits for its slot.
import { DBOS } from '@dbos-inc/dbos-sdk';
import type pg from 'pg';
import type { Logger } from '../logger.js';
import { recordNextSlot, recordSchedulePaused } from '../telemetry/metrics.js';
import { advanceLastFiredAt, markScheduledRun, readScheduleRow } from '../runtime/dbosInternals.js';
import type { CronSchedule } from './cron.js';
import { EvaluationBatch, SCHEDULE_NAME } from './evaluationBatch.js';
import { BATCH_QUEUE } from './schedule.js';
import { SlotFirer, type Clock } from './slotFiring.js';

export function slotWorkflowId(slot: Date): string {
  return `sched-${SCHEDULE_NAME}-${slot.toISOString()}`;
}

export interface FiringDeps {
  schedule: CronSchedule;
  systemPool: pg.Pool;
  logger: Logger;
  clock?: Clock;
}

/** The pause status is read this long before the slot. */
const PREPARE_LEAD_MS = 150;
/**
 * The run is started this long before its slot and waits for the slot inside the workflow (before it records
 * its actual start): its row is then in place before DBOS's own firing (at the slot plus jitter) checks for
 * it, so DBOS never enqueues the slot first (which would make it wait for a queue poll).
 */
export const FIRE_LEAD_MS = 50;

/** Starts the slot's run unless the schedule is paused. */
export async function fireSlot(deps: FiringDeps, slot: Date, paused: boolean): Promise<void> {
  recordSchedulePaused(SCHEDULE_NAME, paused);
  if (paused) {
    deps.logger.debug({ slot: slot.toISOString() }, 'schedule paused: slot not fired');
    return;
  }
  const workflowId = slotWorkflowId(slot);
  // DBOS passes (scheduledTime, context); our schedule has no context.
  await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: workflowId })(slot, null);
  await markScheduledRun(deps.systemPool, workflowId, SCHEDULE_NAME, BATCH_QUEUE);
  await advanceLastFiredAt(deps.systemPool, SCHEDULE_NAME, slot);
}

export function startSlotFiring(deps: FiringDeps): SlotFirer<boolean> {
  const firer = new SlotFirer<boolean>({
    schedule: deps.schedule,
    clock: deps.clock,
    leadMs: PREPARE_LEAD_MS,
    fireLeadMs: FIRE_LEAD_MS,
    // A pause that lands in the last 100 ms is still honoured: each run's gate checks again.
    prepare: async () => (await readScheduleRow(deps.systemPool, SCHEDULE_NAME))?.status === 'PAUSED',
    fire: (slot, paused) => fireSlot(deps, slot, paused ?? false),
    onNext: (slot) => recordNextSlot(SCHEDULE_NAME, slot, deps.schedule.next(slot)),
    onError: (slot, e) =>
      deps.logger.warn({ slot: slot.toISOString(), err: e instanceof Error ? e.message : String(e) }, 'precise firing failed; DBOS scheduler fires the slot'),
  });
  firer.start();
  return firer;
}
