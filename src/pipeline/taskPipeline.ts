// The chunk workflow. DBOS runs it from the `tasks` queue; each step's result is checkpointed, so a chunk
// recovered after a crash replays the recorded transform and inserts instead of redoing them, and the
// inserts themselves are idempotent on their keys (a step interrupted after its commit inserts 0 rows again).
import { DBOS, type StepConfig } from '@dbos-inc/dbos-sdk';
import type { Knex } from 'knex';
import type { Logger } from '../logger.js';
import { fenced, passFence } from '../runtime/executionFence.js';
import {
  errorRow,
  originalRecord,
  parseChunk,
  prepareChunk,
  toTaskRow,
  type Chunk,
  type ChunkInput,
  type ChunkResult,
  type PendingRecord,
  type PreparedChunk,
} from './chunk.js';
import { errorKey } from './identity.js';
import { writeChunk, type ErrorRow, type TaskRow } from './records.js';

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
  static async processChunk(input: ChunkInput): Promise<ChunkResult> {
    const s = current();
    s.onChunkStart?.();
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
              tasksJson,
              taskCount,
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
      tasksJson: JSON.stringify(prepared.tasks),
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
