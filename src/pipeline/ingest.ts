// Feeding a dataset into the running service's `tasks` queue through DBOSClient, and waiting for it.
//
// Two streaming passes: the first checks the file is JSON records at all, counts them and hashes the bytes
// (so a non-JSON file enqueues nothing); the second cuts the records into chunks and enqueues one workflow
// per chunk under a deterministic ID (dataset name, content hash, chunk size, chunk index). DBOS dedups on
// workflow ID, so ingesting the same file again enqueues nothing new — except that chunks which had failed
// (e.g. their inserts ran out of retries while the database was down) run again: DBOS cannot resume a
// workflow that ended in ERROR, so their records are not left in neither table for good.
import { createHash } from 'node:crypto';
import type { DBOSClient, WorkflowStatus } from '@dbos-inc/dbos-sdk';
import { z } from 'zod';
import { DatasetError } from '../errors.js';
import type { ChunkInput, ChunkResult } from './chunk.js';
import { readElements, scanDataset, type DatasetScan } from './dataset.js';
import { TASKS_QUEUE, WORKFLOW_CLASS, WORKFLOW_NAME, type TaskPipeline } from './taskPipeline.js';

/** Enqueues in flight at once: enough to hide round trips, few enough to keep memory flat. */
const ENQUEUE_CONCURRENCY = 4;

export interface IngestPlan extends DatasetScan {
  chunkSize: number;
  chunks: number;
  /** Every chunk workflow's ID starts with this. */
  workflowPrefix: string;
}

export function workflowPrefix(scan: Pick<DatasetScan, 'name' | 'sha256'>, chunkSize: number): string {
  return `ingest:${scan.name}:${scan.sha256.slice(0, 20)}:c${chunkSize}:`;
}

export function chunkIndexOf(workflowId: string, prefix: string): number {
  return Number(workflowId.slice(prefix.length));
}

export function planOf(scan: DatasetScan, chunkSize: number): IngestPlan {
  return { ...scan, chunkSize, chunks: Math.ceil(scan.records / chunkSize), workflowPrefix: workflowPrefix(scan, chunkSize) };
}

/** Records in chunk `index` of the plan (the last chunk may be short). */
export function chunkRecords(plan: IngestPlan, index: number): number {
  return Math.max(0, Math.min(plan.chunkSize, plan.records - index * plan.chunkSize));
}

/** Pass two: stream the records' texts into chunk inputs (the workflow parses them). */
async function* chunksOf(plan: IngestPlan): AsyncGenerator<ChunkInput> {
  const hash = createHash('sha256');
  let chunk: ChunkInput | undefined;
  for await (const element of readElements(plan.file, { onBytes: (b) => hash.update(b) })) {
    chunk ??= { dataset: plan.name, offset: element.index, elements: [] };
    chunk.elements.push(element.text);
    if (chunk.elements.length === plan.chunkSize) {
      yield chunk;
      chunk = undefined;
    }
  }
  if (chunk) yield chunk;
  if (hash.digest('hex') !== plan.sha256) {
    throw new DatasetError(plan.file, 'the file changed while it was being ingested; ingest it again');
  }
}

export interface EnqueueProgress {
  enqueued: number;
  chunks: number;
}

/** Workflow states a chunk ends in without success; with SUCCESS, every state a chunk ends in. */
const FAILED = new Set(['ERROR', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED', 'CANCELLED']);
const TERMINAL = new Set(['SUCCESS', ...FAILED]);

/**
 * Forget the plan's chunks that ended without success, so the enqueue pass creates them afresh under the same
 * IDs. Safe: a chunk's transform is deterministic and its inserts are idempotent on the record keys.
 */
async function clearFailedChunks(client: DBOSClient, plan: IngestPlan): Promise<string[]> {
  const failed = (await listChunks(client, plan, false)).filter((s) => FAILED.has(s.status)).map((s) => s.workflowID);
  if (failed.length > 0) await client.deleteWorkflows(failed);
  return failed;
}

/** Scan, then enqueue every chunk. Throws DatasetError (nothing enqueued) for a file that is not JSON records. */
export async function enqueueDataset(
  client: DBOSClient,
  file: string,
  chunkSize: number,
  onProgress?: (p: EnqueueProgress) => void,
): Promise<IngestPlan & { rerun: string[] }> {
  const plan = planOf(await scanDataset(file), chunkSize);
  const rerun = await clearFailedChunks(client, plan);
  const inFlight = new Set<Promise<void>>();
  let index = 0;
  let enqueued = 0;
  for await (const chunk of chunksOf(plan)) {
    const workflowID = `${plan.workflowPrefix}${index++}`;
    const p: Promise<void> = client
      .enqueue<typeof TaskPipeline.processChunk>(
        {
          queueName: TASKS_QUEUE,
          workflowName: WORKFLOW_NAME,
          workflowClassName: WORKFLOW_CLASS,
          workflowID,
          // Plain JSON: DBOS's default (superjson) costs more CPU than the whole pipeline for big chunks.
          serializationType: 'portable',
        },
        chunk,
      )
      .then(() => {
        inFlight.delete(p);
        onProgress?.({ enqueued: ++enqueued, chunks: plan.chunks });
      });
    p.catch(() => undefined); // a failure surfaces through Promise.race/all below, never as an unhandled rejection
    inFlight.add(p);
    if (inFlight.size >= ENQUEUE_CONCURRENCY) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return { ...plan, rerun };
}

const chunkResultSchema = z.object({
  records: z.number().int(),
  tasks: z.number().int(),
  errors: z.number().int(),
  insertedTasks: z.number().int(),
  insertedErrors: z.number().int(),
});

const PAGE = 1_000;

export interface DatasetProgress {
  chunks: number;
  done: number;
  failed: number;
  /** Records in finished chunks. */
  records: number;
  total: number;
}

async function listChunks(client: DBOSClient, plan: IngestPlan, loadOutput: boolean): Promise<WorkflowStatus[]> {
  const all: WorkflowStatus[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await client.listWorkflows({
      workflow_id_prefix: plan.workflowPrefix,
      loadInput: false,
      loadOutput,
      limit: PAGE,
      offset,
    });
    all.push(...page);
    if (page.length < PAGE) return all;
  }
}

export async function datasetProgress(client: DBOSClient, plan: IngestPlan): Promise<DatasetProgress> {
  const statuses = await listChunks(client, plan, false);
  const progress: DatasetProgress = { chunks: plan.chunks, done: 0, failed: 0, records: 0, total: plan.records };
  for (const s of statuses) {
    if (!TERMINAL.has(s.status)) continue;
    progress.done++;
    if (s.status !== 'SUCCESS') progress.failed++;
    progress.records += chunkRecords(plan, chunkIndexOf(s.workflowID, plan.workflowPrefix));
  }
  return progress;
}

export interface DatasetSummary extends ChunkResult {
  chunks: number;
  failedChunks: string[];
}

/** Sum of the chunk workflows' results, once all are finished. */
export async function datasetSummary(client: DBOSClient, plan: IngestPlan): Promise<DatasetSummary> {
  const summary: DatasetSummary = {
    records: 0, tasks: 0, errors: 0, insertedTasks: 0, insertedErrors: 0, chunks: plan.chunks, failedChunks: [],
  };
  for (const s of await listChunks(client, plan, true)) {
    const result = chunkResultSchema.safeParse(s.output);
    if (s.status !== 'SUCCESS' || !result.success) {
      summary.failedChunks.push(s.workflowID);
      continue;
    }
    summary.records += result.data.records;
    summary.tasks += result.data.tasks;
    summary.errors += result.data.errors;
    summary.insertedTasks += result.data.insertedTasks;
    summary.insertedErrors += result.data.insertedErrors;
  }
  return summary;
}

/** Poll until every chunk of the plan is finished (or `timeoutMs` passes: throws). */
export async function waitForDataset(
  client: DBOSClient,
  plan: IngestPlan,
  options: { pollMs: number; timeoutMs?: number; onProgress?: (p: DatasetProgress) => void },
): Promise<DatasetSummary> {
  const deadline = options.timeoutMs ? Date.now() + options.timeoutMs : Infinity;
  for (;;) {
    const progress = await datasetProgress(client, plan);
    options.onProgress?.(progress);
    if (progress.done >= plan.chunks) return datasetSummary(client, plan);
    if (Date.now() > deadline) {
      throw new Error(`timed out: ${progress.done} of ${plan.chunks} chunks finished (is the service running?)`);
    }
    await new Promise((r) => setTimeout(r, options.pollMs));
  }
}
