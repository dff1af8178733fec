// Batch run history read from the DBOS system database (see batchRunsSql.ts for what a row is).
import { runIdPattern, DEFAULT_SCHEDULE } from '../evaluation/slotContext.js';
import type pg from 'pg';
import { z } from 'zod';
import { listScheduleEvents, type Queryable, type ScheduleEvent } from '../evaluation/scheduleEvents.js';
import { batchRunsSelect, CREATED_AT_MARGIN_MS } from './batchRunsSql.js';

const isoTime = z.date().transform((d) => d.toISOString());
/** pg returns bigint as string; our values are small (milliseconds, counts). */
const bigintNumber = z.union([
  z.number(),
  z
    .string()
    .regex(/^-?\d+$/)
    .transform(Number),
]);

export const batchRunRowSchema = z.object({
  workflow_id: z.string(),
  status: z.string(),
  workflow_status: z.string(),
  manual: z.boolean(),
  scheduled_time: isoTime.nullable(),
  actual_time: isoTime.nullable(),
  completed_at: isoTime.nullable(),
  delay_ms: bigintNumber.nullable(),
  duration_ms: bigintNumber.nullable(),
  processed: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  attempts: z.number().int(),
  retries: z.number().int(),
  skipped_reason: z.string().nullable(),
  message: z.string().nullable(),
  error: z.string().nullable(),
  executor_id: z.string().nullable(),
  application_version: z.string().nullable(),
  recovery_attempts: bigintNumber.nullable(),
});

export type BatchRun = z.infer<typeof batchRunRowSchema>;

export interface HistoryQuery {
  limit: number;
  /** Matches the run's `status` (event status, or the fallback state before the first event). */
  status?: string;
  /** Only this schedule's runs (all schedules' when absent). */
  schedule?: string;
}

/** First window read for a listing; each retry reads WINDOW_GROWTH times further back, then everything. */
const FIRST_WINDOW_MS = 24 * 3_600_000;
const WINDOW_GROWTH = 8;
const WINDOWS = 4;

/**
 * The newest runs by slot. Reads only recently created workflows first (indexed), and widens the window until
 * the answer is provably complete: every run left out was created before the window, so its slot is older
 * than the window's start, hence older than the last row returned.
 */
export async function listBatchRuns(db: pg.ClientBase, q: HistoryQuery, now = Date.now()): Promise<BatchRun[]> {
  for (let i = 0, windowMs = FIRST_WINDOW_MS; i <= WINDOWS; i++, windowMs *= WINDOW_GROWTH) {
    const bounded = i < WINDOWS;
    const windowStart = now - windowMs;
    const params: unknown[] = [q.limit];
    const conditions: string[] = [];
    if (q.status) {
      params.push(q.status);
      conditions.push(`status = $${params.length}`);
    }
    if (q.schedule) {
      params.push(runIdPattern(q.schedule));
      conditions.push(`workflow_id ~ $${params.length}`);
    }
    const where = conditions.length ? `where ${conditions.join(' and ')}` : '';
    let select = batchRunsSelect();
    if (bounded) {
      params.push(windowStart - CREATED_AT_MARGIN_MS);
      select = batchRunsSelect(`$${params.length}`);
    }
    const { rows } = await db.query(
      `select * from (${select}) runs ${where} order by scheduled_time desc nulls last, workflow_id desc limit $1`,
      params,
    );
    const runs = rows.map((r) => batchRunRowSchema.parse(r));
    const last = runs.at(-1);
    const complete =
      runs.length === q.limit && last?.scheduled_time != null && Date.parse(last.scheduled_time) >= windowStart;
    if (!bounded || complete) return runs;
  }
  throw new Error('unreachable: the last window is unbounded');
}

/** One line of history with the schedule's own log mixed in: a run, or a pause/resume/missed/backfill record. */
export type HistoryEntry = ({ type: 'run' } & BatchRun) | ({ type: 'schedule_event' } & ScheduleEvent);

function entryTime(e: HistoryEntry): number {
  return Date.parse((e.type === 'run' ? e.scheduled_time : e.at) ?? '') || 0;
}

/**
 * The runs of `listBatchRuns` and the schedule's events over the same span, newest first. When the runs
 * hit the limit, events older than the oldest run shown are left out (they belong to an older page).
 */
export async function historyWithEvents(
  systemDb: pg.ClientBase,
  appDb: Queryable,
  q: HistoryQuery,
): Promise<HistoryEntry[]> {
  const runs = await listBatchRuns(systemDb, q);
  const oldest = runs.length >= q.limit ? runs[runs.length - 1]?.scheduled_time : undefined;
  const events = await listScheduleEvents(appDb, {
    scheduleName: q.schedule ?? DEFAULT_SCHEDULE,
    since: oldest ? new Date(oldest) : undefined,
    limit: q.limit,
  });
  const entries: HistoryEntry[] = [
    ...runs.map((r) => ({ type: 'run' as const, ...r })),
    ...events.map((e) => ({ type: 'schedule_event' as const, ...e })),
  ];
  return entries.sort((a, b) => entryTime(b) - entryTime(a));
}
