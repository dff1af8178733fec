// BATCH_CATCH_UP_WINDOW: after a long outage DBOS would backfill every slot since `last_fired_at`, without
// limit (a month down at the default cron: 21,600 workflows at start-up). Before DBOS launches, slots older
// than the window are summed up in ONE `missed_summary` event and `last_fired_at` moves to the window's
// start, so DBOS backfills only the window's slots, each then handled by the catch-up policy.
import type { Logger } from '../logger.js';
import { readScheduleRow, replaceLastFiredAt, scheduleTableExists, type Queryable } from '../runtime/dbosInternals.js';
import type { CronSchedule } from './cron.js';
import { recordScheduleEvent } from './scheduleEvents.js';
import { recordMissedSlots } from '../telemetry/metrics.js';

export interface MissedSummary {
  count: number;
  first_slot: string;
  last_slot: string;
  window_ms: number;
}

export interface CatchUpWindowInput {
  system: Queryable;
  app: Queryable;
  scheduleName: string;
  schedule: CronSchedule;
  windowMs: number;
  now: Date;
  logger: Logger;
}

/** Returns the summary recorded, or null when nothing lay outside the window (or another replica did it). */
export async function summariseSlotsBeyondWindow(input: CatchUpWindowInput): Promise<MissedSummary | null> {
  if (!(await scheduleTableExists(input.system))) return null;
  const row = await readScheduleRow(input.system, input.scheduleName);
  // A paused schedule backfills nothing: resuming moves last_fired_at to the resume time.
  if (!row || row.status === 'PAUSED' || !row.lastFiredAt) return null;
  const windowStart = new Date(input.now.getTime() - input.windowMs);
  if (row.lastFiredAt.getTime() >= windowStart.getTime()) return null;
  // DBOS backfills slots strictly after last_fired_at: the old ones are (last_fired_at, windowStart].
  const old = input.schedule.countBetween(new Date(row.lastFiredAt.getTime() + 1), new Date(windowStart.getTime() + 1));
  if (old.count === 0 || !old.first || !old.last) return null;
  if (!(await replaceLastFiredAt(input.system, input.scheduleName, row.lastFiredAt, windowStart))) return null;
  const summary: MissedSummary = {
    count: old.count,
    first_slot: old.first.toISOString(),
    last_slot: old.last.toISOString(),
    window_ms: input.windowMs,
  };
  await recordScheduleEvent(input.app, {
    scheduleName: input.scheduleName,
    kind: 'missed_summary',
    note: `${old.count} slot(s) missed while no replica ran, older than the catch-up window: not run`,
    details: { ...summary },
  });
  input.logger.warn(summary, 'missed slots beyond BATCH_CATCH_UP_WINDOW summed up, not run');
  recordMissedSlots(input.scheduleName, old.count, input.now);
  return summary;
}
