// A chunk: the unit of work of one workflow — consecutive records of one dataset. Pure functions only, so
// the workflow's steps (and their replays) are deterministic.
import { z } from 'zod';
import { redactValue } from '../logger.js';
import { parseElement, recordSchema, type DatasetRecord } from './dataset.js';
import type { ErrorRow, TaskRow } from './records.js';
import { transformRecord, type JsonValue } from './transform.js';

/** Longest text of a non-JSON element kept in its errors row. */
const MAX_RAW_TEXT = 10_000;

export const chunkInputSchema = z.object({
  dataset: z.string().min(1),
  /** Index of the chunk's first record in the dataset. */
  offset: z.number().int().min(0),
  /** The records' texts as read from the file; parsed by the workflow (an element may not be JSON). */
  elements: z.array(z.string()),
});
export type ChunkInput = z.input<typeof chunkInputSchema>;
type Chunk = z.output<typeof chunkInputSchema>;

export interface ChunkResult {
  records: number;
  tasks: number;
  errors: number;
  insertedTasks: number;
  insertedErrors: number;
}

/** `<dataset name>:<record id>`, or the record's index in the dataset when it has no usable id. */
export function taskKey(dataset: string, index: number, record: unknown): string {
  if (record !== null && typeof record === 'object' && !Array.isArray(record)) {
    const id = (record as Record<string, unknown>).id;
    if (typeof id === 'number' || typeof id === 'string') return `${dataset}:${id}`;
  }
  return `${dataset}:${index}`;
}

export function truncateText(text: string): string {
  return text.length > MAX_RAW_TEXT ? `${text.slice(0, MAX_RAW_TEXT)}…` : text;
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

/** Postgres JSONB cannot store U+0000: one such record would fail its whole chunk's insert, every retry. */
const NUL = /\u0000/;
const NUL_GLOBAL = /\u0000/g;

/** True when any string or key, however deep, holds U+0000. */
export function containsNul(value: unknown): boolean {
  if (typeof value === 'string') return NUL.test(value);
  if (Array.isArray(value)) return value.some(containsNul);
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).some(([k, v]) => NUL.test(k) || containsNul(v));
  }
  return false;
}

/** A copy safe for JSONB: U+0000 shown as the text `\u0000`, so the errors row still says what was there. */
export function withoutNul(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(NUL_GLOBAL, '\\u0000');
  if (Array.isArray(value)) return value.map(withoutNul);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(NUL_GLOBAL, '\\u0000'), withoutNul(v)]));
  }
  return value;
}

function errorRow(message: ErrorRow['message']): ErrorRow {
  const safe = withoutNul(redactValue(message)) as ErrorRow['message'];
  return { error_key: safe.task_key, message: safe };
}

export function invalidRecordError(key: string, record: unknown, error: string): ErrorRow {
  return errorRow({ error, kind: 'invalid_record', task_key: key, record, attempts: 1 });
}

export function transformFailedError(key: string, record: unknown, error: string, attempts: number): ErrorRow {
  return errorRow({ error, kind: 'transform_failed', task_key: key, record, attempts });
}

export interface PendingRecord {
  key: string;
  record: DatasetRecord;
  error: string;
}

export interface PreparedChunk {
  tasks: TaskRow[];
  errors: ErrorRow[];
  /** Records whose transform threw: retried (by a retrying step) before they become errors. */
  failed: PendingRecord[];
}

export function parseChunk(input: unknown): Chunk {
  return chunkInputSchema.parse(input);
}

export function toTaskRow(key: string, record: DatasetRecord, failIds: ReadonlySet<string>): TaskRow {
  const data = transformRecord(record as { [key: string]: JsonValue }, failIds);
  return { task_key: key, title: record.title ?? null, data };
}

/** Validate and transform every record of the chunk; per-record problems never fail the chunk. */
export function prepareChunk(chunk: Chunk, failIds: ReadonlySet<string>): PreparedChunk {
  const out: PreparedChunk = { tasks: [], errors: [], failed: [] };
  chunk.elements.forEach((text, i) => {
    const index = chunk.offset + i;
    const element = parseElement(text);
    if (!element.ok) {
      out.errors.push(invalidRecordError(`${chunk.dataset}:${index}`, truncateText(text), `not valid JSON: ${element.error}`));
      return;
    }
    const key = withoutNul(taskKey(chunk.dataset, index, element.value)) as string;
    if (containsNul(element.value)) {
      out.errors.push(invalidRecordError(key, element.value, 'invalid record: contains a NUL character (\\u0000), which Postgres cannot store'));
      return;
    }
    const parsed = recordSchema.safeParse(element.value);
    if (!parsed.success) {
      out.errors.push(invalidRecordError(key, element.value, `invalid record: ${describeIssues(parsed.error)}`));
      return;
    }
    try {
      out.tasks.push(toTaskRow(key, parsed.data, failIds));
    } catch (e) {
      out.failed.push({ key, record: parsed.data, error: e instanceof Error ? e.message : String(e) });
    }
  });
  return out;
}
