// `xyra schedule backfill --from ISO --to ISO`, the client side: lists the range's slots with the schedule's
// own cron (CronSchedule, the same answer the firing uses), tells which already have a run, enqueues one
// backfill request for the rest (evaluation/backfill.ts runs them one after another) and records the
// request in schedule_events. Exactly one run per slot holds by workflow ID, even for concurrent requests.
import { DEFAULT_SCHEDULE } from '../evaluation/slotContext.js';
import type { DBOSClient } from '@dbos-inc/dbos-sdk';
import { backfillWorkflowId, BACKFILL_WORKFLOW, slotWorkflowId } from '../evaluation/backfill.js';
import { recordScheduleEvent, type Queryable } from '../evaluation/scheduleEvents.js';
import { SpecSlots } from '../evaluation/scheduleSpec.js';
import { getScheduleRow } from '../evaluation/scheduleStore.js';
import { ScheduleNotFoundError } from '../errors.js';
import { DBOS_INTERNAL_QUEUE } from '../runtime/dbosInternals.js';

/** One request covers at most this many slots (a year of the default 2-minute cron is 262,800). */
export const MAX_BACKFILL_SLOTS = 10_000;

export interface BackfillPlan {
  schedule: string;
  from: Date;
  to: Date;
  cron: string;
  timezone: string;
  /** Slots in [from, to), oldest first; MAX_BACKFILL_SLOTS + 1 of them means "too many". */
  slots: Date[];
}

/** The schedule's slots in [from, to) by its current spec (cron, zone, start_at/end_at). */
export async function planBackfill(
  appDb: Queryable,
  from: Date,
  to: Date,
  name: string = DEFAULT_SCHEDULE,
): Promise<BackfillPlan> {
  const schedule = await getScheduleRow(appDb, name);
  if (!schedule) throw new ScheduleNotFoundError(name);
  const slots = new SpecSlots(schedule).between(
    new Date(from.getTime() - 1),
    new Date(to.getTime() - 1),
    MAX_BACKFILL_SLOTS + 1,
  );
  return { schedule: name, from, to, cron: schedule.cron, timezone: schedule.timezone, slots };
}

export interface BackfillResult {
  from: string;
  to: string;
  cron: string;
  timezone: string;
  /** Every slot in the range (ISO). */
  slots: string[];
  /** Slots that already had a run: left alone. */
  already_run: string[];
  /** Slots handed to the backfill request, to run one after another. */
  enqueued: string[];
  /** The backfill request's workflow ID; null when every slot already had a run. */
  request_id: string | null;
}

export async function requestBackfill(
  client: DBOSClient,
  appDb: Queryable,
  plan: BackfillPlan,
): Promise<BackfillResult> {
  const ids = plan.slots.map((s) => slotWorkflowId(s, plan.schedule));
  const existing = new Set(
    (await client.listWorkflows({ workflowIDs: ids, loadInput: false, loadOutput: false })).map((w) => w.workflowID),
  );
  const toRun = plan.slots.filter((s) => !existing.has(slotWorkflowId(s, plan.schedule)));
  let requestId: string | null = null;
  if (toRun.length > 0) {
    requestId = backfillWorkflowId(plan.from, plan.to, plan.schedule);
    // Runs go to the application version the schedule fires into, like DBOS's own backfill.
    const version = await client.getLatestApplicationVersion();
    await client.enqueue(
      { ...BACKFILL_WORKFLOW, queueName: DBOS_INTERNAL_QUEUE, workflowID: requestId, appVersion: version.versionName },
      toRun.map((s) => s.toISOString()),
      plan.schedule,
    );
  }
  const result: BackfillResult = {
    from: plan.from.toISOString(),
    to: plan.to.toISOString(),
    cron: plan.cron,
    timezone: plan.timezone,
    slots: plan.slots.map((s) => s.toISOString()),
    already_run: plan.slots.filter((s) => existing.has(slotWorkflowId(s, plan.schedule))).map((s) => s.toISOString()),
    enqueued: toRun.map((s) => s.toISOString()),
    request_id: requestId,
  };
  await recordScheduleEvent(appDb, {
    scheduleName: plan.schedule,
    kind: 'backfill',
    note: `backfill ${result.from} → ${result.to}: ${result.enqueued.length} slots to run, ${result.already_run.length} already run`,
    details: {
      from: result.from,
      to: result.to,
      slots: result.slots.length,
      enqueued: result.enqueued.length,
      already_run: result.already_run.length,
      request_id: requestId,
    },
  });
  return result;
}
