// Feeding a dataset into the running service's `tasks` queue through DBOSClient, waiting for it, and
// accounting for every record.
//
// Two streaming passes. The first checks the file is JSON records at all, counts them, hashes the bytes,
// digests each chunk and decides every duplicate id (a function of the file alone). The second cuts the
// records into chunks, checks each chunk's digest against the first pass (a file changed under us enqueues
// nothing under IDs that belong to other content), and enqueues one workflow per chunk under a deterministic
// ID (dataset name, content hash, chunk size, chunk number). DBOS dedups on workflow ID, so ingesting the
// same file again enqueues nothing new. A chunk whose workflow failed for good is re-run as a new workflow
// forked from it (`.retry<k>` suffix), so the failure and its error stay on record; a chunk an operator
// cancelled stays cancelled unless asked otherwise.
import type { DBOSClient, WorkflowStatus } from '@dbos-inc/dbos-sdk';
import type pg from 'pg';
import { DatasetError } from '../errors.js';
import { VERSION } from '../version.js';
import type { ChunkInput } from './chunk.js';
import { ChunkDigest, readElements, scanDataset, type DatasetScan } from './dataset.js';
import { ERROR_KINDS, type ErrorKind } from './records.js';
import { TASKS_QUEUE, WORKFLOW_CLASS, WORKFLOW_NAME, type TaskPipeline } from './taskPipeline.js';

/** Enqueues in flight at once: enough to hide round trips, few enough to keep memory flat. */
const ENQUEUE_CONCURRENCY = 4;
/** Length of the sha256 prefix in workflow IDs, ingestion keys and errors keys. */
const SHA_PREFIX = 20;

type Db = pg.Client | pg.Pool | pg.PoolClient;

export interface IngestPlan extends DatasetScan {
  chunks: number;
  fileSha: string;
  /** `ingestions.ingestion_key`: dataset, content, chunk size. */
  ingestionKey: string;
  /** Every chunk workflow's ID starts with this. */
  workflowPrefix: string;
}

export function planOf(scan: DatasetScan): IngestPlan {
  const fileSha = scan.sha256.slice(0, SHA_PREFIX);
  const ingestionKey = `${scan.name}:${fileSha}:c${scan.chunkSize}`;
  return {
    ...scan,
    chunks: Math.ceil(scan.records / scan.chunkSize),
    fileSha,
    ingestionKey,
    workflowPrefix: `ingest:${ingestionKey}:`,
  };
}

/** Chunk `n`'s first workflow; its re-runs are `<id>.retry<k>`. */
export function chunkWorkflowId(plan: Pick<IngestPlan, 'workflowPrefix'>, chunk: number, attempt = 0): string {
  return attempt === 0 ? `${plan.workflowPrefix}${chunk}` : `${plan.workflowPrefix}${chunk}.retry${attempt}`;
}

/** `{chunk, attempt}` of a chunk workflow ID of the plan, or undefined for any other ID. */
export function parseChunkWorkflowId(workflowId: string, prefix: string): { chunk: number; attempt: number } | undefined {
  const m = /^(\d+)(?:\.retry(\d+))?$/.exec(workflowId.slice(prefix.length));
  if (!workflowId.startsWith(prefix) || !m) return undefined;
  return { chunk: Number(m[1]), attempt: m[2] === undefined ? 0 : Number(m[2]) };
}

/** Records in chunk `index` of the plan (the last chunk may be short). */
export function chunkRecords(plan: Pick<IngestPlan, 'chunkSize' | 'records'>, index: number): number {
  return Math.max(0, Math.min(plan.chunkSize, plan.records - index * plan.chunkSize));
}

/** Pass two: stream the records into chunk inputs, each checked against the first pass before it is yielded. */
async function* chunksOf(plan: IngestPlan): AsyncGenerator<ChunkInput> {
  const changed = (what: string) =>
    new DatasetError(plan.file, `the file changed while it was being ingested (${what}); nothing more was enqueued, ingest it again`);
  const digest = new ChunkDigest();
  let dup = 0;
  let chunk: ChunkInput | undefined;
  let n = 0;
  const finish = (c: ChunkInput): ChunkInput => {
    if (digest.take() !== plan.chunkDigests[c.chunk]) throw changed(`chunk ${c.chunk} differs`);
    return c;
  };
  for await (const element of readElements(plan.file)) {
    if (n >= plan.chunks * plan.chunkSize) throw changed('more records than before');
    chunk ??= {
      dataset: plan.name,
      ingestion: plan.ingestionKey,
      fileSha: plan.fileSha,
      chunk: Math.floor(n / plan.chunkSize),
      positions: [],
      elements: [],
      duplicates: [],
    };
    n++;
    digest.add(element);
    chunk.positions.push(element.position);
    chunk.elements.push(element.text);
    const dupPositions = plan.duplicates.positions;
    while (dup < dupPositions.length && (dupPositions[dup] ?? 0) < element.position) dup++;
    if (dupPositions[dup] === element.position) chunk.duplicates.push([element.position, plan.duplicates.firsts[dup] ?? 0]);
    if (chunk.elements.length === plan.chunkSize) {
      yield finish(chunk);
      chunk = undefined;
    }
  }
  if (chunk) yield finish(chunk);
  if (n !== plan.records) throw changed('fewer records than before');
}

export type ChunkState = 'enqueued' | 'running' | 'success' | 'failed' | 'cancelled';

export interface ChunkAttempts {
  chunk: number;
  /** The newest attempt decides the chunk's state. */
  latest: WorkflowStatus;
  attempts: number;
  state: ChunkState;
}

function stateOf(status: string): ChunkState {
  switch (status) {
    case 'SUCCESS':
      return 'success';
    case 'ERROR':
    case 'MAX_RECOVERY_ATTEMPTS_EXCEEDED':
      return 'failed';
    case 'CANCELLED':
      return 'cancelled';
    case 'PENDING':
      return 'running';
    default:
      return 'enqueued';
  }
}

const PAGE = 1_000;

/** Every chunk of the plan that has a workflow, with its newest attempt. */
export async function chunkAttempts(client: DBOSClient, plan: IngestPlan): Promise<Map<number, ChunkAttempts>> {
  const byChunk = new Map<number, ChunkAttempts>();
  const attemptOf = new Map<number, number>();
  for (let offset = 0; ; offset += PAGE) {
    const page = await client.listWorkflows({ workflow_id_prefix: plan.workflowPrefix, loadInput: false, loadOutput: false, limit: PAGE, offset });
    for (const s of page) {
      const id = parseChunkWorkflowId(s.workflowID, plan.workflowPrefix);
      if (!id) continue;
      const seen = byChunk.get(id.chunk);
      const newest = !seen || id.attempt > (attemptOf.get(id.chunk) ?? -1);
      byChunk.set(id.chunk, {
        chunk: id.chunk,
        latest: newest ? s : (seen?.latest ?? s),
        attempts: (seen?.attempts ?? 0) + 1,
        state: stateOf(newest ? s.status : (seen?.latest.status ?? s.status)),
      });
      if (newest) attemptOf.set(id.chunk, id.attempt);
    }
    if (page.length < PAGE) return byChunk;
  }
}

/** Record the ingestion (one row per dataset, content and chunk size) before anything is enqueued. */
export async function recordIngestion(db: Db, plan: IngestPlan): Promise<void> {
  try {
    await db.query(
      `insert into ingestions (ingestion_key, dataset, file_name, sha256, format, chunk_size, records, chunks)
       values ($1, $2, $3, $4, $5, $6, $7, $8)
       on conflict (ingestion_key) do update set file_name = excluded.file_name, last_ingested_at = now()`,
      [plan.ingestionKey, plan.name, plan.file, plan.sha256, plan.format, plan.chunkSize, plan.records, plan.chunks],
    );
  } catch (e) {
    if ((e as { code?: string }).code === '42P01') {
      throw new Error('table "ingestions" does not exist: start the service (or run `xyra migrate`) once first');
    }
    throw e;
  }
}

export interface Rerun {
  failed: string[];
  cancelled: string[];
  /** Cancelled chunks left alone (no --retry-cancelled). */
  keptCancelled: string[];
}

/**
 * Re-run the chunks whose newest attempt failed for good (and, when asked, those an operator cancelled) as
 * new workflows forked from that attempt: the failed workflow and its error stay in DBOS.
 */
async function rerunUnfinished(client: DBOSClient, plan: IngestPlan, retryCancelled: boolean): Promise<Rerun> {
  const rerun: Rerun = { failed: [], cancelled: [], keptCancelled: [] };
  for (const c of (await chunkAttempts(client, plan)).values()) {
    if (c.state === 'cancelled' && !retryCancelled) {
      rerun.keptCancelled.push(c.latest.workflowID);
      continue;
    }
    if (c.state !== 'failed' && c.state !== 'cancelled') continue;
    const forkId = chunkWorkflowId(plan, c.chunk, c.attempts);
    try {
      await client.forkWorkflow(c.latest.workflowID, 0, { newWorkflowID: forkId, queueName: TASKS_QUEUE, applicationVersion: VERSION });
    } catch (e) {
      // Another `xyra ingest` of the same file forked it a moment ago: that re-run is ours too.
      if (!/duplicate key|already exists/i.test(String((e as Error).message))) throw e;
    }
    (c.state === 'failed' ? rerun.failed : rerun.cancelled).push(c.latest.workflowID);
  }
  return rerun;
}

export interface EnqueueProgress {
  enqueued: number;
  chunks: number;
}

export interface EnqueueOptions {
  chunkSize: number;
  name?: string;
  retryCancelled?: boolean;
  /** Called between the two passes (tests change the file here). */
  afterScan?: () => Promise<void>;
  onProgress?: (p: EnqueueProgress) => void;
}

/** Scan, record, re-run failed chunks, enqueue the rest. Throws DatasetError for a file that is not JSON records. */
export async function enqueueDataset(client: DBOSClient, db: Db, file: string, options: EnqueueOptions): Promise<IngestPlan & { rerun: Rerun }> {
  const plan = planOf(await scanDataset(file, { chunkSize: options.chunkSize, name: options.name }));
  await options.afterScan?.();
  await recordIngestion(db, plan);
  const rerun = await rerunUnfinished(client, plan, options.retryCancelled ?? false);
  const existing = await chunkAttempts(client, plan);
  const inFlight = new Set<Promise<void>>();
  let enqueued = 0;
  try {
    for await (const chunk of chunksOf(plan)) {
      if (existing.has(chunk.chunk)) continue;
      const p: Promise<void> = client
        .enqueue<typeof TaskPipeline.processChunk>(
          {
            queueName: TASKS_QUEUE,
            workflowName: WORKFLOW_NAME,
            workflowClassName: WORKFLOW_CLASS,
            workflowID: chunkWorkflowId(plan, chunk.chunk),
            // Plain JSON: DBOS's default (superjson) costs more CPU than the whole pipeline for big chunks.
            serializationType: 'portable',
            // This build's chunks: the service's dispatch speed counts the backlog of its own version.
            appVersion: VERSION,
          },
          chunk,
        )
        .then(() => {
          inFlight.delete(p);
          options.onProgress?.({ enqueued: ++enqueued, chunks: plan.chunks });
        });
      p.catch(() => undefined); // a failure surfaces through Promise.race/all below, never as an unhandled rejection
      inFlight.add(p);
      if (inFlight.size >= ENQUEUE_CONCURRENCY) await Promise.race(inFlight);
    }
  } finally {
    // Chunks already checked and handed to DBOS finish enqueueing even when a later chunk stops the pass.
    await Promise.allSettled(inFlight);
  }
  await Promise.all(inFlight);
  return { ...plan, rerun };
}

export interface DatasetProgress {
  chunks: number;
  /** Chunks whose newest attempt ended (success, failed or cancelled). */
  done: number;
  failed: number;
  cancelled: number;
  /** Records in finished chunks. */
  records: number;
  total: number;
}

export async function datasetProgress(client: DBOSClient, plan: IngestPlan): Promise<DatasetProgress> {
  const progress: DatasetProgress = { chunks: plan.chunks, done: 0, failed: 0, cancelled: 0, records: 0, total: plan.records };
  for (const c of (await chunkAttempts(client, plan)).values()) {
    if (c.state === 'enqueued' || c.state === 'running') continue;
    progress.done++;
    if (c.state === 'failed') progress.failed++;
    if (c.state === 'cancelled') progress.cancelled++;
    progress.records += chunkRecords(plan, c.chunk);
  }
  return progress;
}

export interface Accounting {
  records: number;
  tasks: number;
  errors: { total: number; by_kind: Record<ErrorKind, number> };
  /** records − tasks − errors: records this ingestion left without an outcome (0 when all is well). */
  noOutcome: number;
  failedChunks: string[];
  cancelledChunks: string[];
}

/** What the tables hold for this ingestion: the chunks' counts, written with their rows. */
export async function accountFor(client: DBOSClient, db: Db, plan: IngestPlan): Promise<Accounting> {
  const totals = await db.query<{ tasks: string }>('select coalesce(sum(tasks), 0) as tasks from ingestion_chunks where ingestion_key = $1', [plan.ingestionKey]);
  const kinds = await db.query<{ kind: string; n: string }>(
    `select e.key as kind, sum(e.value::int) as n
     from ingestion_chunks c cross join lateral jsonb_each_text(c.errors) e
     where c.ingestion_key = $1 group by e.key`,
    [plan.ingestionKey],
  );
  const byKind = Object.fromEntries(ERROR_KINDS.map((k) => [k, 0])) as Record<ErrorKind, number>;
  for (const r of kinds.rows) byKind[r.kind as ErrorKind] = Number(r.n);
  const errors = Object.values(byKind).reduce((a, b) => a + b, 0);
  const tasks = Number(totals.rows[0]?.tasks ?? 0);
  const failedChunks: string[] = [];
  const cancelledChunks: string[] = [];
  for (const c of (await chunkAttempts(client, plan)).values()) {
    if (c.state === 'failed') failedChunks.push(c.latest.workflowID);
    if (c.state === 'cancelled') cancelledChunks.push(c.latest.workflowID);
  }
  return { records: plan.records, tasks, errors: { total: errors, by_kind: byKind }, noOutcome: plan.records - tasks - errors, failedChunks, cancelledChunks };
}

/** Poll until every chunk's newest attempt has ended (or `timeoutMs` passes: throws), then account. */
export async function waitForDataset(
  client: DBOSClient,
  db: Db,
  plan: IngestPlan,
  options: { pollMs: number; timeoutMs?: number; onProgress?: (p: DatasetProgress) => void },
): Promise<Accounting> {
  const deadline = options.timeoutMs ? Date.now() + options.timeoutMs : Infinity;
  for (;;) {
    const progress = await datasetProgress(client, plan);
    options.onProgress?.(progress);
    if (progress.done >= plan.chunks) return accountFor(client, db, plan);
    if (Date.now() > deadline) {
      throw new Error(`timed out: ${progress.done} of ${plan.chunks} chunks finished (is the service running?)`);
    }
    await new Promise((r) => setTimeout(r, options.pollMs));
  }
}
