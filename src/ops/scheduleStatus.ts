// What the schedule is doing, in one document: `xyra schedule status --json` prints it and the dashboard's
// `/api/schedule` serves it. Reads the schedule's row and log (pauses, resumes, missed-slot summaries) from the
// app database and its runs from the DBOS system database.
import { z } from 'zod';
import type { Config } from '../config.js';
import { BATCH_QUEUE } from '../evaluation/slotContext.js';
import { SpecSlots } from '../evaluation/scheduleSpec.js';
import { getScheduleRow, type ScheduleRow } from '../evaluation/scheduleStore.js';
import { runIdPattern, DEFAULT_SCHEDULE } from '../evaluation/slotContext.js';
import { consecutiveFailures } from '../evaluation/failureStreak.js';
import { listScheduleEvents, type Queryable, type ScheduleEvent } from '../evaluation/scheduleEvents.js';
import { ScheduleNotFoundError } from '../errors.js';
import {
  BATCH_WORKFLOW_CLASS,
  BATCH_WORKFLOW_NAME,
  batchRunsSelect,
  CREATED_AT_MARGIN_MS,
  SLOT_FROM_ID,
} from './batchRunsSql.js';

export const NEXT_SLOTS_SHOWN = 5;
export const LAG_WINDOW_MS = 24 * 3_600_000;

const lastRunSchema = z.object({
  workflow_id: z.string(),
  status: z.string(),
  scheduled_time: z.date().transform((d) => d.toISOString()),
  actual_time: z
    .date()
    .nullable()
    .transform((d) => d?.toISOString() ?? null),
  completed_at: z
    .date()
    .nullable()
    .transform((d) => d?.toISOString() ?? null),
  manual: z.boolean(),
  message: z.string().nullable(),
  error: z.string().nullable(),
});

const num = z.union([z.number(), z.string().transform(Number)]);
const lagSchema = z.object({
  runs: num,
  p50: num.nullable(),
  p95: num.nullable(),
  max: num.nullable(),
});

export interface ScheduleStatus {
  name: string;
  cron: string;
  timezone: string;
  /** `ACTIVE` or `PAUSED` (DBOS's schedule state). */
  status: string;
  /** The note of the pause in force (an operator's `--note`, or the failure policy's reason); null when active. */
  paused_reason: string | null;
  paused_at: string | null;
  /** `operator` or `failure_policy`, from the pause's record. */
  paused_by: string | null;
  /** The latest resume, if the schedule has been resumed since its latest pause. */
  resumed_at: string | null;
  /** The next slots that will fire (ISO UTC); empty while paused, since none will. */
  next_slots: string[];
  next_slot: string | null;
  last_fired_at: string | null;
  last_run: LastRun | null;
  consecutive_failures: number;
  /** BATCH_PAUSE_AFTER_FAILURES as this process reads it; 0 = never. */
  pause_after_failures: number;
  /** Slot → recorded start over the last 24 h, cron slots that ran (manual runs and missed slots excluded). */
  lag_ms: { window_ms: number; runs: number; p50: number | null; p95: number | null; max: number | null };
  /** The latest summary of slots older than the catch-up window that were not run one by one. */
  last_missed_summary: ScheduleEvent | null;
  queue: string | null;
  automatic_backfill: boolean;
}

const LAG_SQL = `
select count(*) as runs,
  percentile_cont(0.5) within group (order by delay_ms) as p50,
  percentile_cont(0.95) within group (order by delay_ms) as p95,
  max(delay_ms) as max
from (${batchRunsSelect('$3')}) runs
where not manual and skipped_reason is distinct from 'missed' and delay_ms is not null
  and scheduled_time >= $1 and scheduled_time <= $2 and workflow_id ~ $4`;

/**
 * Per schedule (`$2` names, `$3` their run-ID patterns): the run with the newest slot, reading only runs created
 * since the newest-created run's slot (minus the margin `$1`), through DBOS's created_at index. Complete: the
 * newest slot is at or after that slot, and a run is created at or after its slot. Without the bound this read
 * every retained run (2.8 s at 100,000 runs). One statement for any number of schedules; a schedule without runs
 * gets a row of nulls.
 */
const LAST_RUNS_SQL = `
select sc.name, lr.workflow_id, lr.status, lr.scheduled_time, lr.actual_time, lr.completed_at, lr.manual, lr.message,
  lr.error
from unnest($2::text[], $3::text[]) as sc(name, pattern)
left join lateral (
  select (extract(epoch from ${SLOT_FROM_ID}) * 1000)::bigint - $1 as since from dbos.workflow_status s
  where s.name = '${BATCH_WORKFLOW_NAME}' and s.class_name = '${BATCH_WORKFLOW_CLASS}' and s.workflow_uuid ~ sc.pattern
  order by s.created_at desc limit 1
) newest on true
left join lateral (
  select workflow_id, status, scheduled_time, actual_time, completed_at, manual, message, error
  from (${batchRunsSelect('newest.since')}) runs
  where workflow_id ~ sc.pattern
  order by scheduled_time desc nulls last, workflow_id desc limit 1
) lr on true`;

export type LastRun = z.output<typeof lastRunSchema>;

/** The run with the newest slot of each named schedule (null: none on record). */
export async function lastRunsOf(systemDb: Queryable, names: readonly string[]): Promise<Map<string, LastRun | null>> {
  const out = new Map<string, LastRun | null>();
  if (names.length === 0) return out;
  const { rows } = await systemDb.query(LAST_RUNS_SQL, [CREATED_AT_MARGIN_MS, names, names.map(runIdPattern)]);
  for (const raw of rows as Array<{ name: string; workflow_id: string | null }>)
    out.set(raw.name, raw.workflow_id === null ? null : lastRunSchema.parse(raw));
  return out;
}

/** One pause event's view of who paused and why. */
function pauseInfo(e: ScheduleEvent | undefined): { by: string | null; note: string | null; at: string | null } {
  if (!e) return { by: null, note: null, at: null };
  const by = typeof e.details.by === 'string' ? e.details.by : null;
  return { by, note: e.note, at: e.at };
}

export async function scheduleStatus(
  systemDb: Queryable,
  appDb: Queryable,
  config: Config,
  now = new Date(),
  name: string = DEFAULT_SCHEDULE,
): Promise<ScheduleStatus> {
  const sched = await getScheduleRow(appDb, name);
  if (!sched) throw new ScheduleNotFoundError(name);
  return describeStatus(sched, systemDb, appDb, config, now);
}

/** One schedule's status document (also what `/api/schedules` builds each schedule's read-only fields from). */
export async function describeStatus(
  sched: ScheduleRow,
  systemDb: Queryable,
  appDb: Queryable,
  config: Config,
  now = new Date(),
): Promise<ScheduleStatus> {
  const name = sched.name;
  const active = sched.status === 'ACTIVE';
  const nextSlots = active ? new SpecSlots(sched).nextSlots(now, NEXT_SLOTS_SHOWN).map((d) => d.toISOString()) : [];

  // Both reads bounded by created_at (DBOS's index) and narrowed to this schedule's runs by workflow ID.
  const pattern = runIdPattern(name);
  const lastRun = (await lastRunsOf(systemDb, [name])).get(name) ?? null;
  const lagSince = now.getTime() - LAG_WINDOW_MS;
  const lag = lagSchema.parse(
    (await systemDb.query(LAG_SQL, [new Date(lagSince), now, lagSince - CREATED_AT_MARGIN_MS, pattern])).rows[0],
  );

  const [latestPauseOrResume] = await listScheduleEvents(appDb, {
    scheduleName: name,
    kinds: ['paused', 'resumed'],
    limit: 1,
  });
  const [latestPause] = await listScheduleEvents(appDb, { scheduleName: name, kinds: ['paused'], limit: 1 });
  const [missed] = await listScheduleEvents(appDb, { scheduleName: name, kinds: ['missed_summary'], limit: 1 });
  const pause = !active && latestPauseOrResume?.kind === 'paused' ? pauseInfo(latestPause) : pauseInfo(undefined);
  const resumedAt = latestPauseOrResume?.kind === 'resumed' ? latestPauseOrResume.at : null;

  const round = (v: number | null) => (v === null ? null : Math.round(v));
  void config;
  return {
    name,
    cron: sched.cron,
    timezone: sched.timezone,
    status: sched.status,
    paused_reason: active ? null : (sched.paused_reason ?? pause.note),
    paused_at: pause.at,
    paused_by: pause.by,
    resumed_at: resumedAt,
    next_slots: nextSlots,
    next_slot: nextSlots[0] ?? null,
    last_fired_at: sched.fired_through,
    last_run: lastRun,
    consecutive_failures: await consecutiveFailures(systemDb, appDb, name),
    pause_after_failures: sched.pause_after_failures,
    lag_ms: { window_ms: LAG_WINDOW_MS, runs: lag.runs, p50: round(lag.p50), p95: round(lag.p95), max: round(lag.max) },
    last_missed_summary: missed ?? null,
    queue: BATCH_QUEUE,
    automatic_backfill: true,
  };
}
