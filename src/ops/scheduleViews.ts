// A schedule as the CLI (`schedule list --json`) and `/api/schedules` show it: the contract's fields, the
// spec and the read-only ones (status, version, next_slots, last_run, consecutive_failures …).
import type { Config } from '../config.js';
import type { ScheduleSpec } from '../evaluation/scheduleSpec.js';
import { listScheduleRows, specOf, type ScheduleRow } from '../evaluation/scheduleStore.js';
import type { Queryable } from '../runtime/databases.js';
import { describeStatus } from './scheduleStatus.js';

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

export async function scheduleView(
  row: ScheduleRow,
  systemDb: Queryable,
  appDb: Queryable,
  config: Config,
  now = new Date(),
): Promise<ScheduleView> {
  const status = await describeStatus(row, systemDb, appDb, config, now);
  return {
    ...specOf(row),
    status: row.status,
    paused_reason: row.paused_reason,
    version: row.version,
    created_at: row.created_at,
    updated_at: row.updated_at,
    managed_by: row.managed_by,
    next_slots: status.next_slots,
    last_run: status.last_run
      ? {
          workflow_id: status.last_run.workflow_id,
          status: status.last_run.status,
          scheduled_time: status.last_run.scheduled_time,
        }
      : null,
    consecutive_failures: status.consecutive_failures,
  };
}

export async function listScheduleViews(
  systemDb: Queryable,
  appDb: Queryable,
  config: Config,
  now = new Date(),
): Promise<ScheduleView[]> {
  const out: ScheduleView[] = [];
  for (const row of await listScheduleRows(appDb)) out.push(await scheduleView(row, systemDb, appDb, config, now));
  return out;
}
