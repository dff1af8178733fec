// The chunk workflow. DBOS runs it from the `tasks` queue. A chunk by reference (staging.ts) is one step and one
// transaction: read its records from the staging table, validate, key and transform them, write the outcome
// set-wise, and, when it is the ingestion's last chunk, drop the staging table. Nothing of the records is
// checkpointed: the transform is pure, so a step re-executed after a crash computes the same rows, and a chunk
// whose outcome already committed returns the counts on record (its staging table may be gone by then).
// A chunk carrying its records (enqueued by a version before staging) runs the steps it always ran, in the
// same order, so one recovered mid-way replays correctly.
import { DBOS, type StepConfig } from '@dbos-inc/dbos-sdk';
import type { Knex } from 'knex';
import type { Logger } from '../logger.js';
import { fenced, passFence } from '../runtime/executionFence.js';
import {
  errorRow,
  isStagedChunk,
  originalRecord,
  parseChunk,
  prepareChunk,
  prepareElements,
  stagedChunkSchema,
  toTaskRow,
  truncateText,
  type Chunk,
  type ChunkInput,
  type ChunkResult,
  type PendingRecord,
  type PreparedChunk,
  type StagedChunk,
} from './chunk.js';
import { parseElement, recordLimitViolation } from './dataset.js';
import { errorKey } from './identity.js';
import {
  countInserted,
  tasksJson as toTasksJson,
  writeChunk,
  writeChunkIn,
  type ChunkOutcome,
  type ErrorKind,
  type ErrorRow,
  type TaskRow,
} from './records.js';
import { readStagedRecords, stagingTable, type StagedRecord } from './staging.js';

export const TASKS_QUEUE = 'tasks';
export const WORKFLOW_NAME = 'processChunk';
export const WORKFLOW_CLASS = 'TaskPipeline';

export interface PipelineSettings {
  knex: Knex;
  logger: Logger;
  failIds: ReadonlySet<string>;
  /** Retry policy of the insert steps and of the transform retry. */
  stepMaxAttempts: number;
  stepIntervalMs: number;
  stepBackoffRate: number;
  /** Bound on waiting for a table lock in one insert attempt. */
  lockTimeoutMs: number;
  /** Told when a chunk starts here (the tasks queue then polls fast for a while: pipeline/queuePolling.ts). */
  onChunkStart?: () => void;
}

let settings: PipelineSettings | undefined;

/** Called once at start-up, before DBOS launches. */
export function configureTaskPipeline(s: PipelineSettings): void {
  settings = s;
}

function current(): PipelineSettings {
  if (!settings) throw new Error('TaskPipeline used before configureTaskPipeline()');
  return settings;
}

function retryPolicy(s: PipelineSettings, maxAttempts: number): StepConfig {
  return {
    retriesAllowed: true,
    maxAttempts,
    intervalSeconds: s.stepIntervalMs / 1000,
    backoffRate: s.stepBackoffRate,
  };
}

interface RetriedTransforms {
  tasks: TaskRow[];
  errors: ErrorRow[];
}

/**
 * The transform step's checkpointed output. Task rows travel as one JSON text: DBOS serializes step outputs
 * with superjson, which walks every value and costs more CPU than the rest of the pipeline; a single string
 * is nearly free, and it is exactly what the insert statement takes.
 */
interface TransformOutput {
  tasksJson: string;
  taskCount: number;
  errors: ErrorRow[];
  failed: PendingRecord[];
}

export class TaskPipeline {
  // Portable (plain JSON) serialization of inputs and result, matching how `xyra ingest` enqueues.
  @DBOS.workflow({ maxRecoveryAttempts: 3, serialization: 'portable' })
  static async processChunk(input: ChunkInput | StagedChunk): Promise<ChunkResult> {
    const s = current();
    s.onChunkStart?.();
    if (isStagedChunk(input)) {
      const staged = stagedChunkSchema.parse(input);
      const policy = { name: 'writeStagedChunk', ...retryPolicy(s, s.stepMaxAttempts) };
      let written = await DBOS.runStep(() => writeStagedChunk(s, staged), policy);
      if (written.kind === 'transformFailed') {
        // Only the records whose transform threw get further attempts (their own step and retry budget); then
        // the chunk is written with their verdicts, its write keeping the whole retry budget for lock timeouts.
        const retried = await TaskPipeline.retryTransforms(written.failed);
        written = await DBOS.runStep(() => writeStagedChunk(s, staged, retried), policy);
      }
      if (written.kind !== 'written') throw new Error(`chunk ${staged.chunk}: transform failures without verdicts`);
      return { records: staged.records, ...written.outcome };
    }
    const chunk = parseChunk(input);
    const prepared = await TaskPipeline.transform(chunk);
    let tasksJson = prepared.tasksJson;
    let taskCount = prepared.taskCount;
    const errors = [...prepared.errors];
    if (prepared.failed.length > 0) {
      const retried = await TaskPipeline.retryTransforms(prepared.failed);
      if (retried.tasks.length > 0) {
        tasksJson = JSON.stringify([...(JSON.parse(tasksJson) as TaskRow[]), ...retried.tasks]);
        taskCount += retried.tasks.length;
      }
      errors.push(...retried.errors);
    }
    const policy = retryPolicy(s, s.stepMaxAttempts);
    // One transaction writes the chunk's tasks, errors and counts: a chunk is all done or not done at all.
    const outcome = await DBOS.runStep(
      // Every step first waits for a confirmed executor claim, and waits out a database outage (executionFence.ts).
      () =>
        fenced(() =>
          writeChunk(
            s.knex,
            {
              ingestion: chunk.ingestion,
              chunk: chunk.chunk,
              records: chunk.elements.length,
              tasks: { json: tasksJson, count: taskCount },
              errors,
              originalRecord: (position) => originalRecord(chunk, position),
              errorKeyOf: (position) => errorKey(chunk.dataset, chunk.fileSha, position),
            },
            s,
          ),
        ),
      { name: 'writeChunk', ...policy },
    );
    return { records: chunk.elements.length, ...outcome };
  }

  /** Validate and transform the chunk's records; failures are returned, never thrown. */
  @DBOS.step()
  static async transform(chunk: Chunk): Promise<TransformOutput> {
    await passFence();
    const prepared: PreparedChunk = prepareChunk(chunk, current().failIds);
    return {
      tasksJson: toTasksJson(prepared.tasks),
      taskCount: prepared.tasks.length,
      errors: prepared.errors,
      failed: prepared.failed,
    };
  }

  /**
   * Records whose transform threw get further attempts under the step retry policy (the first attempt was
   * the transform step). The last attempt returns the records that still fail as errors rows with their
   * attempt count, instead of throwing, so one bad record never fails the chunk.
   */
  static async retryTransforms(failed: PendingRecord[]): Promise<RetriedTransforms> {
    const s = current();
    if (s.stepMaxAttempts <= 1) {
      return { tasks: [], errors: failed.map((f) => errorRow(f.place, 'transform_failed', f.error, f.record, 1)) };
    }
    return DBOS.runStep(
      async () => {
        await passFence();
        const attempt = DBOS.stepStatus?.currentAttempt ?? 1;
        const last = attempt >= (DBOS.stepStatus?.maxAttempts ?? 1);
        const out: RetriedTransforms = { tasks: [], errors: [] };
        for (const f of failed) {
          try {
            out.tasks.push(toTaskRow(f.place, f.record, s.failIds));
          } catch (e) {
            const error = e instanceof Error ? e.message : String(e);
            if (!last) throw new Error(`transform still failing for ${f.place.key}: ${error}`);
            out.errors.push(errorRow(f.place, 'transform_failed', error, f.record, attempt + 1));
          }
        }
        return out;
      },
      { name: 'retryTransforms', ...retryPolicy(s, s.stepMaxAttempts - 1) },
    );
  }
}

function stagedElement(r: StagedRecord) {
  return {
    position: r.position,
    text: r.text,
    firstPosition: r.first_position ?? undefined,
    // Staging stored why the text did not parse; a record over a size/depth limit keeps that verdict (and its
    // preview) from the text itself, which staging holds as the oversize mark or the deep text.
    parsed: r.invalid === null ? undefined : (recordLimitViolation(r.text) ?? { ok: false as const, error: r.invalid }),
    parses: r.invalid === null, // staging parsed it
  };
}

type StagedWrite = { kind: 'written'; outcome: ChunkOutcome } | { kind: 'transformFailed'; failed: PendingRecord[] };

/**
 * The step of a chunk by reference. When records' transforms throw and no verdicts for them are given, nothing is
 * written: they are returned for retryTransforms, and the step runs again with its verdicts.
 */
async function writeStagedChunk(
  s: PipelineSettings,
  chunk: StagedChunk,
  retried?: RetriedTransforms,
): Promise<StagedWrite> {
  const result = await s.knex.transaction(async (trx): Promise<StagedWrite & { committedNow?: boolean }> => {
    await trx.raw(`select set_config('lock_timeout', ?, true)`, [`${s.lockTimeoutMs}ms`]);
    const recorded = (await trx.raw(
      'select tasks, errors from ingestion_chunks where ingestion_key = ? and chunk = ?',
      [chunk.ingestion, chunk.chunk],
    )) as {
      rows: Array<{ tasks: number; errors: Partial<Record<ErrorKind, number>> }>;
    };
    const done = recorded.rows[0];
    if (done)
      return {
        kind: 'written',
        outcome: { tasks: done.tasks, errors: done.errors, insertedTasks: 0, insertedErrors: 0 },
      };

    const table = stagingTable(chunk.ingestionId);
    const rows = await readStagedRecords(trx, table, chunk.first, chunk.last);
    if (rows.length !== chunk.records) {
      throw new Error(
        `staging table ${table} holds ${rows.length} of the ${chunk.records} records of chunk ${chunk.chunk} (positions ${chunk.first}-${chunk.last})`,
      );
    }
    const prepared = prepareElements(chunk, rows.map(stagedElement), s.failIds);
    if (prepared.failed.length > 0 && !retried) return { kind: 'transformFailed', failed: prepared.failed };
    const tasks = retried ? [...prepared.tasks, ...retried.tasks] : prepared.tasks;
    const errors = retried ? [...prepared.errors, ...retried.errors] : prepared.errors;
    let byPosition: Map<number, StagedRecord> | undefined;
    const outcome = await writeChunkIn(trx, {
      ingestion: chunk.ingestion,
      chunk: chunk.chunk,
      records: chunk.records,
      tasks: { rows: tasks },
      errors,
      originalRecord: (position) => {
        byPosition ??= new Map(rows.map((r) => [r.position, r]));
        const text = byPosition.get(position)?.text ?? '';
        const parsed = parseElement(text);
        return parsed.ok ? parsed.value : truncateText(text);
      },
      errorKeyOf: (position) => errorKey(chunk.dataset, chunk.fileSha, position),
    });
    await dropStagingIfLast(trx, chunk);
    return { kind: 'written', outcome, committedNow: true };
  });
  if (result.kind === 'written' && result.committedNow) countInserted(result.outcome);
  return result.kind === 'written' ? { kind: 'written', outcome: result.outcome } : result;
}

/**
 * The ingestion's last chunk to commit drops its staging table. The ingestion's row is locked first, so two
 * chunks committing at once see each other's `ingestion_chunks` rows and exactly one of them drops it.
 */
async function dropStagingIfLast(trx: Knex.Transaction, chunk: StagedChunk): Promise<void> {
  const found = (await trx.raw('select chunks, staging from ingestions where ingestion_key = ? for update', [
    chunk.ingestion,
  ])) as {
    rows: Array<{ chunks: number; staging: string | null }>;
  };
  const ingestion = found.rows[0];
  if (!ingestion?.staging) return;
  const done = (await trx.raw('select count(*)::int as n from ingestion_chunks where ingestion_key = ?', [
    chunk.ingestion,
  ])) as { rows: Array<{ n: number }> };
  if ((done.rows[0]?.n ?? 0) < ingestion.chunks) return;
  await trx.raw(`drop table if exists ${stagingTable(chunk.ingestionId)}`);
  await trx.raw('update ingestions set staging = null where ingestion_key = ?', [chunk.ingestion]);
}
