// The monitoring figures for batch runs over a window: runs per status, success rate, duration and delay
// percentiles, retry frequency, missed slots. Aggregated in SQL over the same run definition as history.
import { getScheduleRow } from '../evaluation/scheduleStore.js';
import { runIdPattern, DEFAULT_SCHEDULE } from '../evaluation/slotContext.js';
import type pg from 'pg';
import { z } from 'zod';
import { CronSchedule } from '../evaluation/cron.js';
import { listScheduleEvents, type Queryable } from '../evaluation/scheduleEvents.js';
import { BATCH_WORKFLOW_CLASS, BATCH_WORKFLOW_NAME, batchRunsSelect, CREATED_AT_MARGIN_MS } from './batchRunsSql.js';

/** A slot counts as "without run" only once a late start (a loaded machine, a catch-up after a restart) is unlikely. */
export const STATS_SLOT_GRACE_MS = 15_000;
/** Bounds the slot walk for very fast crons over long windows. */
const MAX_SLOTS_CHECKED = 200_000;

const num = z.union([z.number(), z.string().transform(Number)]);
const nullableNum = num.nullable().transform((v) => (v === null ? null : Math.round(v)));

const aggregateSchema = z.object({
  runs: num,
  manual_runs: num,
  completed: num,
  failed: num,
  skipped: num,
  triggered: num,
  in_flight: num,
  workflow_errors: num,
  missed_slots: num,
  in_progress_skips: num,
  api_runs: num,
  runs_with_retries: num,
  total_retries: num,
  processed: num,
  succeeded: num,
  failed_items: num,
  duration_p50: nullableNum,
  duration_p95: nullableNum,
  duration_max: nullableNum,
  delay_p50: nullableNum,
  delay_p95: nullableNum,
  delay_max: nullableNum,
});

const statusCountSchema = z.object({ status: z.string(), runs: num });

export interface Percentiles {
  p50: number | null;
  p95: number | null;
  max: number | null;
}

export interface BatchStats {
  since: string;
  until: string;
  runs: number;
  manual_runs: number;
  by_status: Record<string, number>;
  /** completed ÷ (completed + failed): skipped and in-flight runs are neither. */
  success_rate: number | null;
  items: { processed: number; succeeded: number; failed: number };
  /** From the run's recorded start to its end, finished runs only. */
  duration_ms: Percentiles;
  /** Scheduled slot → recorded start, cron slots only (manual runs and slots skipped as missed excluded). */
  delay_ms: Percentiles;
  retries: { api_runs: number; runs_with_retries: number; total_retries: number; retry_rate: number | null };
  /** Slots recorded as skipped by the catch-up policy (the service was down). */
  missed_slots: number;
  /** Cron slots in the window with no run at all (schedule paused, or backfill off); null if unknown. */
  slots_without_run: number | null;
  in_progress_skips: number;
  workflow_errors: number;
  /** Slots older than BATCH_CATCH_UP_WINDOW after an outage, summed up instead of run (recorded in the window). */
  missed_summary: MissedSummary;
}

export interface MissedSummary {
  /** How many summary records (outages) fall in the window. */
  records: number;
  /** Slots they sum up. */
  slots: number;
  first_slot: string | null;
  last_slot: string | null;
}

const missedDetailsSchema = z.object({ count: num, first_slot: z.string(), last_slot: z.string() });

/** Adds up the `missed_summary` records of schedule_events recorded in [since, until]. */
export async function missedSummary(appDb: Queryable, since: Date, until: Date): Promise<MissedSummary> {
  const events = (
    await listScheduleEvents(appDb, { scheduleName: DEFAULT_SCHEDULE, kinds: ['missed_summary'], since, limit: 10_000 })
  ).filter((e) => Date.parse(e.at) <= until.getTime());
  const out: MissedSummary = { records: events.length, slots: 0, first_slot: null, last_slot: null };
  for (const e of events) {
    const d = missedDetailsSchema.parse(e.details);
    out.slots += d.count;
    if (out.first_slot === null || Date.parse(d.first_slot) < Date.parse(out.first_slot)) out.first_slot = d.first_slot;
    if (out.last_slot === null || Date.parse(d.last_slot) > Date.parse(out.last_slot)) out.last_slot = d.last_slot;
  }
  return out;
}

const AGGREGATE_SQL = `
select
  count(*) as runs,
  count(*) filter (where manual) as manual_runs,
  count(*) filter (where status = 'completed') as completed,
  count(*) filter (where status = 'failed') as failed,
  count(*) filter (where status = 'skipped') as skipped,
  count(*) filter (where status = 'triggered' and completed_at is not null) as triggered,
  count(*) filter (where completed_at is null) as in_flight,
  count(*) filter (where workflow_status in ('ERROR', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')) as workflow_errors,
  count(*) filter (where skipped_reason = 'missed') as missed_slots,
  count(*) filter (where skipped_reason = 'in_progress') as in_progress_skips,
  count(*) filter (where attempts > 0) as api_runs,
  count(*) filter (where attempts > 1) as runs_with_retries,
  coalesce(sum(retries), 0) as total_retries,
  coalesce(sum(processed), 0) as processed,
  coalesce(sum(succeeded), 0) as succeeded,
  coalesce(sum(failed), 0) as failed_items,
  percentile_cont(0.5) within group (order by duration_ms) filter (where completed_at is not null) as duration_p50,
  percentile_cont(0.95) within group (order by duration_ms) filter (where completed_at is not null) as duration_p95,
  max(duration_ms) filter (where completed_at is not null) as duration_max,
  percentile_cont(0.5) within group (order by delay_ms) filter (where not manual and skipped_reason is distinct from 'missed') as delay_p50,
  percentile_cont(0.95) within group (order by delay_ms) filter (where not manual and skipped_reason is distinct from 'missed') as delay_p95,
  max(delay_ms) filter (where not manual and skipped_reason is distinct from 'missed') as delay_max
from (${batchRunsSelect('$3')}) runs
where scheduled_time >= $1 and scheduled_time <= $2`;

/** `appDb` (schedule_events) adds the missed-slot summaries; without it they read as none. */
export async function batchStats(
  db: pg.ClientBase,
  sinceMs: number,
  now = new Date(),
  appDb?: Queryable,
): Promise<BatchStats> {
  const since = new Date(now.getTime() - sinceMs);
  // Runs with a slot in the window were created since its start (minus the margin): read only those, indexed.
  const createdSince = since.getTime() - CREATED_AT_MARGIN_MS;
  const agg = aggregateSchema.parse((await db.query(AGGREGATE_SQL, [since, now, createdSince])).rows[0]);
  const byStatus = (
    await db.query(
      `select status, count(*) as runs from (${batchRunsSelect('$3')}) runs where scheduled_time >= $1 and scheduled_time <= $2 group by status order by status`,
      [since, now, createdSince],
    )
  ).rows.map((r) => statusCountSchema.parse(r));
  const decided = agg.completed + agg.failed;
  return {
    since: since.toISOString(),
    until: now.toISOString(),
    runs: agg.runs,
    manual_runs: agg.manual_runs,
    by_status: Object.fromEntries(byStatus.map((s) => [s.status, s.runs])),
    success_rate: decided === 0 ? null : agg.completed / decided,
    items: { processed: agg.processed, succeeded: agg.succeeded, failed: agg.failed_items },
    duration_ms: { p50: agg.duration_p50, p95: agg.duration_p95, max: agg.duration_max },
    delay_ms: { p50: agg.delay_p50, p95: agg.delay_p95, max: agg.delay_max },
    retries: {
      api_runs: agg.api_runs,
      runs_with_retries: agg.runs_with_retries,
      total_retries: agg.total_retries,
      retry_rate: agg.api_runs === 0 ? null : agg.runs_with_retries / agg.api_runs,
    },
    missed_slots: agg.missed_slots,
    slots_without_run: appDb ? await slotsWithoutRun(db, appDb, since, now) : null,
    in_progress_skips: agg.in_progress_skips,
    workflow_errors: agg.workflow_errors,
    missed_summary: appDb
      ? await missedSummary(appDb, since, now)
      : { records: 0, slots: 0, first_slot: null, last_slot: null },
  };
}

/**
 * Walks the schedule's cron over the window (from the first slot ever run, so time before the first
 * deployment is not counted) and counts slots that have no workflow. Uses the schedule's current cron:
 * after a cron change, earlier slots of the old cron are not judged.
 */
async function slotsWithoutRun(db: pg.ClientBase, appDb: Queryable, since: Date, now: Date): Promise<number | null> {
  const sched = await getScheduleRow(appDb, DEFAULT_SCHEDULE);
  if (!sched) return null;
  const createdSince = since.getTime() - CREATED_AT_MARGIN_MS;
  const slotRows = (
    await db.query(
      `select scheduled_time from (${batchRunsSelect('$2')}) runs where not manual and scheduled_time >= $1 and workflow_id ~ $3 order by scheduled_time`,
      [since, createdSince, runIdPattern(DEFAULT_SCHEDULE)],
    )
  ).rows.map((r) => z.object({ scheduled_time: z.date() }).parse(r).scheduled_time.getTime());
  // The first slot ever run, only where it matters (after the window's start). A cron run created before the
  // window read above has its slot before the window, so the walk starts at the window; otherwise the first slot
  // is among the rows read.
  const olderRun = (
    await db.query(
      `select exists (select 1 from dbos.workflow_status s where s.name = $1 and s.class_name = $2 and s.created_at < $3::bigint
         and s.workflow_uuid not like 'sched-evaluation-batch-trigger-%') as older`,
      [BATCH_WORKFLOW_NAME, BATCH_WORKFLOW_CLASS, createdSince],
    )
  ).rows.map((r) => z.object({ older: z.boolean() }).parse(r).older)[0];
  const first = olderRun
    ? since
    : (
        await db.query(`select min(scheduled_time) as first from (${batchRunsSelect('$1')}) runs where not manual`, [
          createdSince,
        ])
      ).rows.map((r) => z.object({ first: z.date().nullable() }).parse(r).first)[0];
  if (!first) return 0;

  const seen = new Set(slotRows);
  const cron = new CronSchedule(sched.cron, sched.timezone);
  const end = now.getTime() - STATS_SLOT_GRACE_MS;
  let cursor = Math.max(since.getTime(), first.getTime()) - 1;
  let missing = 0;
  for (let i = 0; i < MAX_SLOTS_CHECKED; i++) {
    const next = cron.next(new Date(cursor));
    if (next.getTime() > end) break;
    if (!seen.has(next.getTime())) missing += 1;
    cursor = next.getTime();
  }
  return missing;
}
