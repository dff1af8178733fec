// A schedule as the CLI (`schedule list --json`) and `/api/schedules` show it: the contract's fields, the
// spec and the read-only ones (status, version, next_slots, last_run, consecutive_failures …), with the same
// definitions as `schedule status` (scheduleStatus.ts, failurePolicy.ts), read set-wise for all schedules.
import type { ScheduleSpec } from '../evaluation/scheduleSpec.js';
import { listScheduleRows, specOf, type ScheduleRow } from '../evaluation/scheduleStore.js';
import type { Queryable } from '../runtime/databases.js';
import { consecutiveFailuresOf } from '../evaluation/failureStreak.js';
import { SpecSlots } from '../evaluation/scheduleSpec.js';
import { lastRunsOf, NEXT_SLOTS_SHOWN } from './scheduleStatus.js';

export interface ScheduleView extends ScheduleSpec {
  status: 'ACTIVE' | 'PAUSED';
  paused_reason: string | null;
  version: number;
  created_at: string;
  updated_at: string;
  managed_by: string;
  next_slots: string[];
  last_run: { workflow_id: string; status: string; scheduled_time: string } | null;
  consecutive_failures: number;
}

/**
 * The views of `rows`, in a fixed number of statements whatever their number (their rows, then one for the last
 * runs, two for the failure streaks): `schedule list` and `/api/schedules` with hundreds of schedules.
 */
export async function scheduleViewsOf(
  rows: readonly ScheduleRow[],
  systemDb: Queryable,
  appDb: Queryable,
  now = new Date(),
): Promise<ScheduleView[]> {
  const names = rows.map((r) => r.name);
  const [lastRuns, failures] = await Promise.all([
    lastRunsOf(systemDb, names),
    consecutiveFailuresOf(systemDb, appDb, names),
  ]);
  return rows.map((row) => {
    const lastRun = lastRuns.get(row.name) ?? null;
    return {
      ...specOf(row),
      status: row.status,
      paused_reason: row.paused_reason,
      version: row.version,
      created_at: row.created_at,
      updated_at: row.updated_at,
      managed_by: row.managed_by,
      // As `schedule status` lists them: none while paused, since none will fire.
      next_slots:
        row.status === 'ACTIVE' ? new SpecSlots(row).nextSlots(now, NEXT_SLOTS_SHOWN).map((d) => d.toISOString()) : [],
      last_run: lastRun
        ? { workflow_id: lastRun.workflow_id, status: lastRun.status, scheduled_time: lastRun.scheduled_time }
        : null,
      consecutive_failures: failures.get(row.name) ?? 0,
    };
  });
}

export async function scheduleView(
  row: ScheduleRow,
  systemDb: Queryable,
  appDb: Queryable,
  now = new Date(),
): Promise<ScheduleView> {
  const [view] = await scheduleViewsOf([row], systemDb, appDb, now);
  return view!;
}

export async function listScheduleViews(
  systemDb: Queryable,
  appDb: Queryable,
  now = new Date(),
): Promise<ScheduleView[]> {
  return scheduleViewsOf(await listScheduleRows(appDb), systemDb, appDb, now);
}
