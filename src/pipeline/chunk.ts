// A chunk: the unit of work of one workflow — consecutive records of one dataset, with the duplicate verdicts
// decided for them. Its input is a reference (`StagedChunk`: ingestion and position range; the records are in
// the ingestion's staging table, see staging.ts) or, from versions before staging, the records themselves
// (`ChunkInput`: still run, so nothing an older `xyra ingest` enqueued is lost). Pure functions only, so the
// workflow's steps (and their replays) are deterministic: the same records always yield the same rows.
import { z } from 'zod';
import { MAX_RECORD_DEPTH, parseElement, recordSchema, type DatasetRecord, type ParsedElement } from './dataset.js';
import { errorKey, recordId, taskKey } from './identity.js';
import type { ErrorKind, ErrorMessage, ErrorRow, PreparedTask, TaskRow } from './records.js';
import { transformRecord, transformRecordText, type JsonValue } from './transform.js';

/** Longest text of a non-JSON element kept in its errors row. */
const MAX_RAW_TEXT = 10_000;

export const chunkInputSchema = z
  .object({
    dataset: z.string().min(1),
    /** The ingestion this chunk belongs to (`ingestions.ingestion_key`). */
    ingestion: z.string().min(1),
    /** Prefix of the file's sha256: part of every errors key, see identity.ts. */
    fileSha: z.string().min(1),
    /** Number of the chunk in its ingestion, from 0. */
    chunk: z.number().int().min(0),
    /** 1-based position in the file of each element (element number, or line number for NDJSON). */
    positions: z.array(z.number().int().min(1)),
    /** The records' texts as read from the file; parsed by the workflow (an element may not be JSON). */
    elements: z.array(z.string()),
    /** `[position, first position]` for each element whose id occurred earlier in the file. */
    duplicates: z.array(z.tuple([z.number().int().min(1), z.number().int().min(1)])),
  })
  .refine((c) => c.positions.length === c.elements.length, { message: 'positions and elements differ in length' });
export type ChunkInput = z.input<typeof chunkInputSchema>;
export type Chunk = z.output<typeof chunkInputSchema>;

/** A chunk by reference: `records` records of the ingestion's staging table, positions `first`..`last`. */
export const stagedChunkSchema = z
  .object({
    v: z.literal(2),
    dataset: z.string().min(1),
    /** `ingestions.ingestion_key`. */
    ingestion: z.string().min(1),
    /** `ingestions.id`: names the staging table. */
    ingestionId: z.number().int().min(1),
    fileSha: z.string().min(1),
    chunk: z.number().int().min(0),
    first: z.number().int().min(1),
    last: z.number().int().min(1),
    records: z.number().int().min(1),
  })
  .refine((c) => c.last - c.first + 1 >= c.records, { message: 'position range shorter than its record count' });
export type StagedChunk = z.output<typeof stagedChunkSchema>;

export function isStagedChunk(input: unknown): boolean {
  return typeof input === 'object' && input !== null && (input as { v?: unknown }).v === 2;
}

/** Counts of one chunk's outcomes: `records = tasks + sum(errors)` when nothing went wrong. */
export interface ChunkResult {
  records: number;
  /** Records whose tasks row holds exactly their data (inserted now, or identical from before). */
  tasks: number;
  errors: Partial<Record<ErrorKind, number>>;
  insertedTasks: number;
  insertedErrors: number;
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

/** A copy safe for JSONB: U+0000 shown as the text `\u0000` (the only change ever made to a stored record). */
export function withoutNul(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(NUL_GLOBAL, '\\u0000');
  if (Array.isArray(value)) return value.map(withoutNul);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(NUL_GLOBAL, '\\u0000'), withoutNul(v)]));
  }
  return value;
}

/** Where a record sits: enough to key its errors row and say which record it was. */
export interface RecordPlace {
  dataset: string;
  fileSha: string;
  position: number;
  key: string;
}

/** An errors row. The record is stored as given (no redaction: it is data, not a log line). */
export function errorRow(
  place: RecordPlace,
  kind: ErrorKind,
  error: string,
  record: unknown,
  attempts = 1,
  extra: Partial<ErrorMessage> = {},
): ErrorRow {
  const message: ErrorMessage = {
    error,
    kind,
    task_key: place.key,
    position: place.position,
    record: withoutNul(record),
    attempts,
    ...extra,
  };
  return { error_key: errorKey(place.dataset, place.fileSha, place.position), message };
}

export interface PendingRecord {
  place: RecordPlace;
  record: DatasetRecord;
  error: string;
}

export interface PreparedChunk {
  tasks: PreparedTask[];
  errors: ErrorRow[];
  /** Records whose transform threw: retried (by a retrying step) before they become errors. */
  failed: PendingRecord[];
}

export function parseChunk(input: unknown): Chunk {
  return chunkInputSchema.parse(input);
}

export function toTaskRow(place: RecordPlace, record: DatasetRecord, failIds: ReadonlySet<string>): TaskRow {
  const data = transformRecord(record as { [key: string]: JsonValue }, failIds);
  return { task_key: place.key, title: record.title ?? null, data, position: place.position };
}

/** The record at `position` of the chunk as given in the file (parsed when it is JSON, else its text). */
export function originalRecord(chunk: Chunk, position: number): unknown {
  const i = chunk.positions.indexOf(position);
  const text = chunk.elements[i] ?? '';
  const parsed = parseElement(text);
  return parsed.ok ? parsed.value : truncateText(text);
}

/** One record of a chunk as read from the file: its position, text and duplicate verdict. */
export interface ChunkElement {
  position: number;
  text: string;
  /** Set when the record's id occurred earlier in the file: the first occurrence's position. */
  firstPosition?: number;
  /** The parse result when already known (staging records a parse error); parsed here otherwise. */
  parsed?: ParsedElement;
  /** The text is known to be JSON that JSON.parse accepts (staging parsed it): it may be transformed as text. */
  parses?: boolean;
}

/** Validate, key and transform every record; per-record problems never fail the chunk. */
export function prepareElements(
  where: { dataset: string; fileSha: string },
  elements: Iterable<ChunkElement>,
  failIds: ReadonlySet<string>,
): PreparedChunk {
  const out: PreparedChunk = { tasks: [], errors: [], failed: [] };
  for (const { position, text, firstPosition, parsed: known, parses } of elements) {
    if (parses && known === undefined && firstPosition === undefined) {
      // The common record, transformed on its text (transform.ts says when that is exactly the same).
      const done = transformRecordText(text, failIds, MAX_RECORD_DEPTH);
      if (done) {
        out.tasks.push({
          task_key: taskKey(where.dataset, position, done.id),
          title: done.title,
          dataJson: done.data,
          position,
        });
        continue;
      }
    }
    const element = known ?? parseElement(text);
    const id = element.ok ? recordId(element.value) : undefined;
    const place: RecordPlace = {
      dataset: where.dataset,
      fileSha: where.fileSha,
      position,
      key: taskKey(where.dataset, position, id),
    };
    if (!element.ok) {
      out.errors.push(
        element.limit
          ? errorRow(place, 'invalid_record', `invalid record: ${element.error}`, element.limit.preview)
          : errorRow(place, 'invalid_record', `not valid JSON: ${element.error}`, truncateText(text)),
      );
      continue;
    }
    if (firstPosition !== undefined) {
      out.errors.push(
        errorRow(
          place,
          'duplicate_id',
          `duplicate id: the record at position ${firstPosition} has the same id`,
          element.value,
          1,
          { first_position: firstPosition },
        ),
      );
      continue;
    }
    if (containsNul(element.value)) {
      out.errors.push(
        errorRow(
          place,
          'invalid_record',
          'invalid record: contains a NUL character (\\u0000), which Postgres cannot store',
          element.value,
        ),
      );
      continue;
    }
    const parsed = recordSchema.safeParse(element.value);
    if (!parsed.success) {
      out.errors.push(
        errorRow(place, 'invalid_record', `invalid record: ${describeIssues(parsed.error)}`, element.value),
      );
      continue;
    }
    try {
      out.tasks.push(toTaskRow(place, parsed.data, failIds));
    } catch (e) {
      out.failed.push({ place, record: parsed.data, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return out;
}

/** Validate, key and transform every record of a chunk that carries its records (versions before staging). */
export function prepareChunk(chunk: Chunk, failIds: ReadonlySet<string>): PreparedChunk {
  const firstOf = new Map(chunk.duplicates);
  return prepareElements(
    chunk,
    chunk.elements.map((text, i) => {
      const position = chunk.positions[i] ?? 0;
      return { position, text, firstPosition: firstOf.get(position) };
    }),
    failIds,
  );
}
