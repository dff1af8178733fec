// Batch run history read from the DBOS system database (see batchRunsSql.ts for what a row is).
import type pg from 'pg';
import { z } from 'zod';
import { SCHEDULE_NAME } from '../evaluation/evaluationBatch.js';
import { listScheduleEvents, type Queryable, type ScheduleEvent } from '../evaluation/scheduleEvents.js';
import { BATCH_RUNS_SELECT } from './batchRunsSql.js';

const isoTime = z.date().transform((d) => d.toISOString());
/** pg returns bigint as string; our values are small (milliseconds, counts). */
const bigintNumber = z.union([z.number(), z.string().regex(/^-?\d+$/).transform(Number)]);

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
}

export async function listBatchRuns(db: pg.ClientBase, q: HistoryQuery): Promise<BatchRun[]> {
  const params: unknown[] = [q.limit];
  let where = '';
  if (q.status) {
    params.push(q.status);
    where = 'where status = $2';
  }
  const { rows } = await db.query(
    `select * from (${BATCH_RUNS_SELECT}) runs ${where} order by scheduled_time desc nulls last, workflow_id desc limit $1`,
    params,
  );
  return rows.map((r) => batchRunRowSchema.parse(r));
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
export async function historyWithEvents(systemDb: pg.ClientBase, appDb: Queryable, q: HistoryQuery): Promise<HistoryEntry[]> {
  const runs = await listBatchRuns(systemDb, q);
  const oldest = runs.length >= q.limit ? runs[runs.length - 1]?.scheduled_time : undefined;
  const events = await listScheduleEvents(appDb, {
    scheduleName: SCHEDULE_NAME,
    since: oldest ? new Date(oldest) : undefined,
    limit: q.limit,
  });
  const entries: HistoryEntry[] = [
    ...runs.map((r) => ({ type: 'run' as const, ...r })),
    ...events.map((e) => ({ type: 'schedule_event' as const, ...e })),
  ];
  return entries.sort((a, b) => entryTime(b) - entryTime(a));
}
