// Row models of `tasks`, `errors` and `ingestion_chunks`, and the one transaction that writes a chunk's outcome.
// Multi-row statements over one JSON parameter (jsonb_to_recordset); every write is idempotent on its key, so
// a step re-executed after a crash between its commit and its checkpoint writes nothing twice and returns the
// same counts.
import type { Knex } from 'knex';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { recordDbOperations } from '../telemetry/metrics.js';
import type { JsonValue } from './transform.js';

export interface TaskRow {
  task_key: string;
  title: string | null;
  data: JsonValue;
  /** The record's position in its file (not a column: used to name it in a key_conflict error). */
  position: number;
}

/** A tasks row whose data is already JSON text (the transform done on the record's text: transform.ts). */
export interface TextTaskRow {
  task_key: string;
  title: string | null;
  dataJson: string;
  position: number;
}

export type PreparedTask = TaskRow | TextTaskRow;

/** The JSON array of tasks rows the insert statement takes (`data` as JSON either way). */
export function tasksJson(tasks: readonly PreparedTask[]): string {
  const rows = tasks.map((t) =>
    'dataJson' in t
      ? `{"task_key":${JSON.stringify(t.task_key)},"title":${JSON.stringify(t.title)},"data":${t.dataJson},"position":${t.position}}`
      : JSON.stringify(t),
  );
  return `[${rows.join(',')}]`;
}

export const ERROR_KINDS = ['invalid_record', 'transform_failed', 'duplicate_id', 'key_conflict'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

/** The `errors.message` JSONB. */
export interface ErrorMessage {
  error: string;
  kind: ErrorKind;
  task_key: string;
  /** 1-based position of the record in its file. */
  position: number;
  /** The original record (or, for an element that is not JSON, its text). */
  record: unknown;
  attempts: number;
  /** duplicate_id: position of the id's first occurrence. */
  first_position?: number;
  /** key_conflict: what the tasks row already holds. */
  stored?: { title: string | null; data: unknown };
}

export interface ErrorRow {
  error_key: string;
  message: ErrorMessage;
}

/** Inserts are bounded by a lock timeout, so a held table fails the attempt quickly and the step retries. */
export interface InsertOptions {
  lockTimeoutMs: number;
}

/**
 * A chunk's tasks rows: as prepared (written with COPY), or as the JSON array of TaskRow a checkpointed step
 * returned (chunks that carry their records, enqueued before staging).
 */
export type TasksToWrite = { rows: readonly PreparedTask[] } | { json: string; count: number };

export interface ChunkWrite {
  ingestion: string;
  chunk: number;
  records: number;
  tasks: TasksToWrite;
  errors: readonly ErrorRow[];
  /** The record at a position as given, for a key_conflict error. */
  originalRecord(position: number): unknown;
  /** The errors key of the record at a position (see identity.ts). */
  errorKeyOf(position: number): string;
}

export interface ChunkOutcome {
  tasks: number;
  errors: Partial<Record<ErrorKind, number>>;
  insertedTasks: number;
  insertedErrors: number;
}

const INSERT_TASKS_SQL = `
  insert into tasks (task_key, title, data)
  select r.task_key, r.title, r.data
  from jsonb_to_recordset(?::jsonb) as r(task_key text, title text, data jsonb)
  on conflict (task_key) do nothing
  returning task_key`;

// The same rows without ON CONFLICT: tried first, in a savepoint. A speculative insertion (ON CONFLICT) took a third
// more of Postgres's CPU per row; a key already taken (a re-run, another ingestion) fails this one at once and the
// chunk takes the ON CONFLICT path from the savepoint.
const INSERT_NEW_TASKS_SQL = `
  insert into tasks (task_key, title, data)
  select r.task_key, r.title, r.data
  from jsonb_to_recordset(?::jsonb) as r(task_key text, title text, data jsonb)`;

const UNIQUE_VIOLATION = '23505';

// A separate statement from the insert: under READ COMMITTED it sees rows another transaction committed
// while our insert waited on them.
const STORED_TASKS_SQL = `
  select r.task_key, r.position, t.title, t.data, (t.data = r.data and t.title is not distinct from r.title) as same
  from jsonb_to_recordset(?::jsonb) as r(task_key text, title text, data jsonb, position int)
  join tasks t on t.task_key = r.task_key`;

const INSERT_ERRORS_SQL = `
  insert into errors (error_key, message)
  select r.error_key, r.message
  from jsonb_to_recordset(?::jsonb) as r(error_key text, message jsonb)
  on conflict (error_key) do nothing`;

const UPSERT_CHUNK_SQL = `
  insert into ingestion_chunks (ingestion_key, chunk, records, tasks, errors)
  values (?, ?, ?, ?, ?::jsonb)
  on conflict (ingestion_key, chunk) do update
    set records = excluded.records, tasks = excluded.tasks, errors = excluded.errors, finished_at = now()`;

interface StoredTask {
  task_key: string;
  position: number;
  title: string | null;
  data: unknown;
  same: boolean;
}

/**
 * One transaction: insert the tasks rows; for keys already taken, identical data counts as present and
 * different data becomes a key_conflict error; insert the errors rows; record the chunk's counts.
 */
export async function writeChunk(knex: Knex, w: ChunkWrite, options: InsertOptions): Promise<ChunkOutcome> {
  const outcome = await knex.transaction(async (trx) => {
    await trx.raw(`select set_config('lock_timeout', ?, true)`, [`${options.lockTimeoutMs}ms`]);
    return writeChunkIn(trx, w);
  });
  countInserted(outcome);
  return outcome;
}

/** The OTel counters count rows actually inserted: call once the transaction that inserted them committed. */
export function countInserted(outcome: ChunkOutcome): void {
  recordDbOperations('insert_task', outcome.insertedTasks);
  recordDbOperations('insert_error', outcome.insertedErrors);
}

const COPY_SPECIAL = /[\\\n\r\t]/g;

/** A value in COPY's text format (the JSON texts and keys here hold no U+0000: chunk.ts turns those away). */
function copyValue(s: string): string {
  return s.replace(COPY_SPECIAL, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'));
}

/** The rows as COPY text: key, title, data (JSON text: what the JSONB column parses, as from a parameter). */
export function tasksCopyText(rows: readonly PreparedTask[]): string {
  let text = '';
  for (const t of rows) {
    const data = 'dataJson' in t ? t.dataJson : JSON.stringify(t.data);
    text += `${copyValue(t.task_key)}\t${t.title === null ? '\\N' : copyValue(t.title)}\t${copyValue(data)}\n`;
  }
  return text;
}

/** knex types its client `any`; inside a transaction it hands out the transaction's connection (makeTxClient). */
interface TransactionClient {
  acquireConnection(): Promise<pg.ClientBase>;
}

/**
 * COPY into `tasks` on the transaction's own connection. Postgres's CPU per 1,000 rows: ~10 ms, against ~17 ms for
 * the same rows through one `jsonb_to_recordset` parameter (parsed whole into JSONB at bind, then taken apart).
 */
async function copyTasks(trx: Knex.Transaction, rows: readonly PreparedTask[]): Promise<void> {
  const connection = await (trx.client as TransactionClient).acquireConnection();
  await new Promise<void>((resolve, reject) => {
    const stream = connection.query(copyFrom('copy tasks (task_key, title, data) from stdin'));
    stream.once('finish', resolve);
    stream.once('error', reject);
    stream.end(tasksCopyText(rows));
  });
}

function taskCount(tasks: TasksToWrite): number {
  return 'rows' in tasks ? tasks.rows.length : tasks.count;
}

function tasksJsonOf(tasks: TasksToWrite): string {
  return 'rows' in tasks ? tasksJson(tasks.rows) : tasks.json;
}

/** Inserts every task row when no key is taken (true); else inserts nothing (false). */
async function insertAllNew(trx: Knex.Transaction, w: ChunkWrite): Promise<boolean> {
  await trx.raw('savepoint xyra_new_tasks');
  try {
    if ('rows' in w.tasks) await copyTasks(trx, w.tasks.rows);
    else await trx.raw(INSERT_NEW_TASKS_SQL, [w.tasks.json]);
  } catch (e) {
    if ((e as { code?: string }).code !== UNIQUE_VIOLATION) throw e;
    await trx.raw('rollback to savepoint xyra_new_tasks');
    return false;
  }
  await trx.raw('release savepoint xyra_new_tasks');
  return true;
}

/** The chunk's writes, inside the caller's transaction (see writeChunk). */
export async function writeChunkIn(trx: Knex.Transaction, w: ChunkWrite): Promise<ChunkOutcome> {
  let insertedTasks = 0;
  let present = 0;
  const errors = [...w.errors];
  const count = taskCount(w.tasks);
  if (count > 0 && (await insertAllNew(trx, w))) insertedTasks = count;
  else if (count > 0) {
    const json = tasksJsonOf(w.tasks);
    const inserted = (await trx.raw(INSERT_TASKS_SQL, [json])) as { rows: Array<{ task_key: string }> };
    insertedTasks = inserted.rows.length;
    if (insertedTasks < count) {
      const taken = new Set(inserted.rows.map((r) => r.task_key));
      const rest = (JSON.parse(json) as TaskRow[]).filter((t) => !taken.has(t.task_key));
      const stored = (await trx.raw(STORED_TASKS_SQL, [JSON.stringify(rest)])) as { rows: StoredTask[] };
      for (const s of stored.rows) {
        if (s.same) {
          present++;
          continue;
        }
        errors.push({
          error_key: w.errorKeyOf(s.position),
          message: {
            error: `key ${s.task_key} already holds a different record (from an earlier ingestion)`,
            kind: 'key_conflict',
            task_key: s.task_key,
            position: s.position,
            record: w.originalRecord(s.position),
            attempts: 1,
            stored: { title: s.title, data: s.data },
          },
        });
      }
    }
  }
  let insertedErrors = 0;
  if (errors.length > 0) {
    const result = (await trx.raw(INSERT_ERRORS_SQL, [JSON.stringify(errors)])) as { rowCount: number | null };
    insertedErrors = result.rowCount ?? 0;
  }
  const byKind: Partial<Record<ErrorKind, number>> = {};
  for (const e of errors) byKind[e.message.kind] = (byKind[e.message.kind] ?? 0) + 1;
  const tasks = insertedTasks + present;
  await trx.raw(UPSERT_CHUNK_SQL, [w.ingestion, w.chunk, w.records, tasks, JSON.stringify(byKind)]);
  return { tasks, errors: byKind, insertedTasks, insertedErrors };
}
