// Staging: every record of a dataset written once into Postgres, in bulk, where it stays until its outcome is on
// record. `xyra ingest` streams the file in one pass into `COPY … FROM STDIN` (pg-copy-streams) into a table of
// its own ingestion, `xyra_staging.ingestion_<id>` (position, record id, parse error, text); then, in the same
// transaction, decides every duplicate set-wise (first position per id, one window query) and records the
// ingestion as staged. Chunk workflows carry only a position range and read their records from here; the last
// chunk to finish drops the table (taskPipeline.ts). A table per ingestion rather than one shared table: the
// drop is instant and leaves no dead rows to vacuum, its primary key is built once after the load instead of
// maintained row by row, and no ingestion's COPY or drop ever locks another's records.
//
// All or nothing: the table, the verdicts and the ingestion's `staged_at` commit together, so a CLI killed mid-COPY,
// a file that turns out not to be JSON records, or a file that changed since its hash was taken leaves nothing.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { DatasetError } from '../errors.js';
import { assertReadableFile, readFileBytes, readRecords, type DatasetFormat } from './dataset.js';
import { recordId } from './identity.js';

export const STAGING_SCHEMA = 'xyra_staging';

/** The staging table of an ingestion (its id is a bigserial: the name is safe to put into SQL). */
export function stagingTable(ingestionId: number): string {
  if (!Number.isSafeInteger(ingestionId) || ingestionId <= 0)
    throw new Error(`invalid ingestion id ${String(ingestionId)}`);
  return `${STAGING_SCHEMA}.ingestion_${ingestionId}`;
}

/** sha256 of the file's bytes (the first, cheap pass: no parsing). */
export async function hashFile(file: string): Promise<string> {
  await assertReadableFile(file); // /dev/zero would be hashed forever
  const hash = createHash('sha256');
  for await (const bytes of readFileBytes(file, 1024 * 1024)) hash.update(bytes);
  return hash.digest('hex');
}

const COPY_SPECIAL = /[\\\n\r\t\u0000]/g;

/**
 * A value in COPY's text format. U+0000 cannot be stored in a text column: it is staged as the six characters
 * `\u0000` (what an errors row shows for it anyway), and the record keeps the parse error it had with it.
 */
function copyValue(s: string): string {
  return s.replace(COPY_SPECIAL, (c) =>
    c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : '\\\\u0000',
  );
}

export interface StageInput {
  file: string;
  name: string;
  /** sha256 of the file from the first pass: the second must read the same bytes. */
  sha256: string;
  chunkSize: number;
  ingestionKey: string;
}

export interface StagedIngestion {
  ingestionId: number;
  format: DatasetFormat;
  records: number;
  chunks: number;
  /** Its staging table, or null once every chunk finished (dropped) or for an ingestion staged by no one. */
  staging: string | null;
  /** True when this call loaded the records (false: an earlier `xyra ingest` of the same content did). */
  stagedNow: boolean;
}

interface IngestionRow {
  id: string;
  staged_at: Date | null;
  format: DatasetFormat;
  records: number;
  chunks: number;
  staging: string | null;
}

/** Bytes of COPY text per write: big enough to keep per-write overhead low, small enough to keep memory flat. */
const COPY_BATCH_BYTES = 256 * 1024;

/**
 * COPY rows gathered as bytes. Each row's text is copied into the batch's buffer at once, so the record's
 * strings die young: a string batch (a rope over a thousand rows) kept them alive until it was written, V8
 * promoted them, and the CLI's peak RSS grew by ~60 MB at 100,000 records.
 */
class CopyBatch {
  private buffer = Buffer.allocUnsafe(COPY_BATCH_BYTES);
  private length = 0;

  /** Adds a row; returns the full batch to send first when the row does not fit. */
  add(row: string): Buffer | undefined {
    const bytes = Buffer.byteLength(row);
    let full: Buffer | undefined;
    if (this.length + bytes > this.buffer.length && this.length > 0) full = this.take();
    if (bytes > this.buffer.length) this.buffer = Buffer.allocUnsafe(bytes);
    this.buffer.write(row, this.length);
    this.length += bytes;
    return full;
  }

  /** The rows so far (a copy: the buffer is reused). */
  take(): Buffer {
    const out = Buffer.from(this.buffer.subarray(0, this.length));
    this.length = 0;
    if (this.buffer.length > COPY_BATCH_BYTES) this.buffer = Buffer.allocUnsafe(COPY_BATCH_BYTES);
    return out;
  }

  get empty(): boolean {
    return this.length === 0;
  }
}

/**
 * Stage the file's records for the ingestion, once: a second `xyra ingest` of the same content (or one running
 * at the same moment: an advisory lock per ingestion serialises them) finds it staged and loads nothing.
 */
export async function stageDataset(db: pg.ClientBase, input: StageInput): Promise<StagedIngestion> {
  await db.query('begin');
  try {
    await db.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [`xyra-stage:${input.ingestionKey}`]);
    const found = await db.query<IngestionRow>(
      'select id, staged_at, format, records, chunks, staging from ingestions where ingestion_key = $1',
      [input.ingestionKey],
    );
    const existing = found.rows[0];
    if (existing?.staged_at) {
      await db.query('update ingestions set file_name = $2, last_ingested_at = now() where id = $1', [
        existing.id,
        input.file,
      ]);
      await db.query('commit');
      return {
        ingestionId: Number(existing.id),
        format: existing.format,
        records: existing.records,
        chunks: existing.chunks,
        staging: existing.staging,
        stagedNow: false,
      };
    }
    const inserted = await db.query<{ id: string }>(
      `insert into ingestions (ingestion_key, dataset, file_name, sha256, format, chunk_size, records, chunks)
       values ($1, $2, $3, $4, 'ndjson', $5, 0, 0)
       on conflict (ingestion_key) do update set file_name = excluded.file_name, last_ingested_at = now()
       returning id`,
      [input.ingestionKey, input.name, input.file, input.sha256, input.chunkSize],
    );
    const ingestionId = Number(inserted.rows[0]?.id);
    const table = stagingTable(ingestionId);
    await db.query(`drop table if exists ${table}`);
    await db.query(
      `create table ${table} (position integer not null, record_id text, first_position integer, invalid text, text text not null)`,
    );

    const hash = createHash('sha256');
    let format: DatasetFormat = 'ndjson';
    let records = 0;
    async function* rows(): AsyncGenerator<Buffer> {
      const batch = new CopyBatch();
      for await (const { element, parsed } of readRecords(input.file, {
        onBytes: (b) => hash.update(b),
        onFormat: (f) => (format = f),
      })) {
        const id = parsed.ok ? recordId(parsed.value) : undefined;
        const full = batch.add(
          `${element.position}\t${id === undefined ? '\\N' : copyValue(id)}\t` +
            `${parsed.ok ? '\\N' : copyValue(parsed.error)}\t${copyValue(element.text)}\n`,
        );
        records++;
        if (full) yield full;
      }
      if (!batch.empty) yield batch.take();
    }
    await pipeline(
      Readable.from(rows()),
      db.query(copyFrom(`copy ${table} (position, record_id, invalid, text) from stdin`)),
    );
    if (hash.digest('hex') !== input.sha256) {
      throw new DatasetError(
        input.file,
        'the file changed while it was being ingested (its content differs from its first read); nothing was enqueued, ingest it again',
      );
    }
    await db.query(`alter table ${table} add primary key (position)`);
    // Duplicate ids, decided set-wise: every occurrence after the first (in file order) names the first. One
    // hash aggregate over the ids; a file without duplicates updates nothing and joins nothing (a window over
    // every row, sorted by id, took 2.5x as long at 100,000 records).
    await db.query(
      `update ${table} t set first_position = d.first
         from (select record_id, min(position) as first from ${table} where record_id is not null
                group by record_id having count(*) > 1) d
        where t.record_id = d.record_id and t.position > d.first`,
    );
    const chunks = Math.ceil(records / input.chunkSize);
    // An empty dataset has no chunk that would ever drop its table.
    const staging = records > 0 ? table : null;
    if (!staging) await db.query(`drop table ${table}`);
    await db.query(
      'update ingestions set format = $2, records = $3, chunks = $4, staging = $5, staged_at = now() where id = $1',
      [ingestionId, format, records, chunks, staging],
    );
    await db.query('commit');
    return { ingestionId, format, records, chunks, staging, stagedNow: true };
  } catch (e) {
    await db.query('rollback').catch(() => undefined);
    if ((e as { code?: string }).code === '42P01' || (e as { code?: string }).code === '3F000') {
      throw new Error(
        'table "ingestions" or schema "xyra_staging" does not exist: start the service (or run `xyra migrate`) once first',
      );
    }
    throw e;
  }
}

/** One staged record, as a chunk reads it. */
export interface StagedRecord {
  position: number;
  text: string;
  /** Set when the record's id occurred earlier in the file: the first occurrence's position. */
  first_position: number | null;
  /** Set when the text is not JSON: the parse error. */
  invalid: string | null;
}

/** The staged records of positions [first, last], in file order. */
export async function readStagedRecords(
  db: { raw(sql: string, bindings: unknown[]): Promise<unknown> },
  table: string,
  first: number,
  last: number,
): Promise<StagedRecord[]> {
  const result = (await db.raw(
    `select position, text, first_position, invalid from ${table} where position between ? and ? order by position`,
    [first, last],
  )) as {
    rows: StagedRecord[];
  };
  return result.rows;
}
