// Batch run history read from the DBOS system database (see batchRunsSql.ts for what a row is).
import type pg from 'pg';
import { z } from 'zod';
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
