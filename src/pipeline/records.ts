// Row models of `tasks` and `errors` and their multi-row, idempotent inserts. One statement per chunk
// (jsonb_to_recordset over one JSON parameter), ON CONFLICT DO NOTHING on the unique key, and the count of
// rows actually inserted goes to the xyra.db.operations counter.
import type { Knex } from 'knex';
import { recordDbOperations } from '../telemetry/metrics.js';
import type { JsonValue } from './transform.js';

export interface TaskRow {
  task_key: string;
  title: string | null;
  data: JsonValue;
}

export type ErrorKind = 'invalid_record' | 'transform_failed';

/** The `errors.message` JSONB. */
export interface ErrorMessage {
  error: string;
  kind: ErrorKind;
  task_key: string;
  /** The original record (or, for an element that is not JSON, its text). */
  record: unknown;
  attempts: number;
}

export interface ErrorRow {
  error_key: string;
  message: ErrorMessage;
}

/**
 * Inserts are bounded by a lock timeout, so a table held by someone else fails the attempt quickly and the
 * step's retry policy (not an indefinite wait) decides what happens next.
 */
export interface InsertOptions {
  lockTimeoutMs: number;
}

async function insertInTransaction(knex: Knex, sql: string, json: string, options: InsertOptions): Promise<number> {
  return knex.transaction(async (trx) => {
    await trx.raw(`select set_config('lock_timeout', ?, true)`, [`${options.lockTimeoutMs}ms`]);
    const result = (await trx.raw(sql, [json])) as { rowCount: number | null };
    return result.rowCount ?? 0;
  });
}

// A key already in the other table is skipped too, so a record can never end in both tables (e.g. when a
// dataset of the same name but different content is ingested later).
const INSERT_TASKS_SQL = `
  insert into tasks (task_key, title, data)
  select r.task_key, r.title, r.data
  from jsonb_to_recordset(?::jsonb) as r(task_key text, title text, data jsonb)
  where not exists (select 1 from errors e where e.error_key = r.task_key)
  on conflict (task_key) do nothing`;

const INSERT_ERRORS_SQL = `
  insert into errors (error_key, message)
  select r.error_key, r.message
  from jsonb_to_recordset(?::jsonb) as r(error_key text, message jsonb)
  where not exists (select 1 from tasks t where t.task_key = r.error_key)
  on conflict (error_key) do nothing`;

/** `rowsJson` is a JSON array of TaskRow (`count` rows). Returns the number of rows inserted (conflicts excluded). */
export async function insertTasks(knex: Knex, rowsJson: string, count: number, options: InsertOptions): Promise<number> {
  if (count === 0) return 0;
  const inserted = await insertInTransaction(knex, INSERT_TASKS_SQL, rowsJson, options);
  recordDbOperations('insert_task', inserted);
  return inserted;
}

/** Returns the number of rows inserted (conflicts excluded). */
export async function insertErrors(knex: Knex, rows: readonly ErrorRow[], options: InsertOptions): Promise<number> {
  if (rows.length === 0) return 0;
  const inserted = await insertInTransaction(knex, INSERT_ERRORS_SQL, JSON.stringify(rows), options);
  recordDbOperations('insert_error', inserted);
  return inserted;
}
