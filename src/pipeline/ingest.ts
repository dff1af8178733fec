// Feeding a dataset into the running service's `tasks` queue through DBOSClient, waiting for it, and
// accounting for every record.
//
// Two streaming passes. The first hashes the file's bytes (no parsing): with the dataset name and chunk size it
// names the ingestion. The second (staging.ts) parses each record once, COPYs it into the ingestion's staging
// table and decides every duplicate in SQL, in one transaction that also checks the bytes hash the same again
// (a file changed under us stages nothing and enqueues nothing). Then one workflow per chunk is enqueued under
// a deterministic ID (dataset name, content hash, chunk size, chunk number) carrying only a reference: the
// ingestion and its position range. DBOS dedups on workflow ID and staging happens once per ingestion, so
// ingesting the same file again loads and enqueues nothing new. A chunk whose workflow failed for good is re-run
// as a new workflow forked from it (`.retry<k>` suffix), so the failure and its error stay on record (its
// records stay staged until it succeeds); a chunk an operator cancelled stays cancelled unless asked otherwise.
import type { DBOSClient, WorkflowStatus } from '@dbos-inc/dbos-sdk';
import type pg from 'pg';
import { isConnectionError } from '../runtime/databaseOutage.js';
import { VERSION } from '../version.js';
import type { StagedChunk } from './chunk.js';
import { datasetName, type DatasetFormat } from './dataset.js';
import { ERROR_KINDS, type ErrorKind } from './records.js';
import { noticeEnqueued } from './ingestNotice.js';
import { hashFile, stageDataset } from './staging.js';
import { TASKS_QUEUE, WORKFLOW_CLASS, WORKFLOW_NAME, type TaskPipeline } from './taskPipeline.js';

/** Enqueues in flight at once: enough to hide round trips, few enough to keep memory flat. */
const ENQUEUE_CONCURRENCY = 4;
/** Length of the sha256 prefix in workflow IDs, ingestion keys and errors keys. */
const SHA_PREFIX = 20;

type Db = pg.ClientBase;

export interface IngestPlan {
  file: string;
  name: string;
  format: DatasetFormat;
  records: number;
  /** sha256 of the file's bytes, hex. */
  sha256: string;
  chunkSize: number;
  chunks: number;
  fileSha: string;
  /** `ingestions.ingestion_key`: dataset, content, chunk size. */
  ingestionKey: string;
  /** `ingestions.id`: names its staging table. */
  ingestionId: number;
  /** Every chunk workflow's ID starts with this. */
  workflowPrefix: string;
  /** True when this run staged the records (false: an earlier run of the same content did). */
  stagedNow: boolean;
}

/** Chunk `n`'s first workflow; its re-runs are `<id>.retry<k>`. */
export function chunkWorkflowId(plan: Pick<IngestPlan, 'workflowPrefix'>, chunk: number, attempt = 0): string {
  return attempt === 0 ? `${plan.workflowPrefix}${chunk}` : `${plan.workflowPrefix}${chunk}.retry${attempt}`;
}

/** `{chunk, attempt}` of a chunk workflow ID of the plan, or undefined for any other ID. */
export function parseChunkWorkflowId(
  workflowId: string,
  prefix: string,
): { chunk: number; attempt: number } | undefined {
  const m = /^(\d+)(?:\.retry(\d+))?$/.exec(workflowId.slice(prefix.length));
  if (!workflowId.startsWith(prefix) || !m) return undefined;
  return { chunk: Number(m[1]), attempt: m[2] === undefined ? 0 : Number(m[2]) };
}

/** Records in chunk `index` of the plan (the last chunk may be short). */
export function chunkRecords(plan: Pick<IngestPlan, 'chunkSize' | 'records'>, index: number): number {
  return Math.max(0, Math.min(plan.chunkSize, plan.records - index * plan.chunkSize));
}

/** First and last position of each chunk to enqueue (NDJSON positions are line numbers: blank lines leave gaps). */
async function chunkRanges(
  db: Db,
  plan: IngestPlan,
  staging: string,
  wanted: number[],
): Promise<Map<number, { first: number; last: number }>> {
  const ranges = new Map<number, { first: number; last: number }>();
  if (wanted.length === 0) return ranges;
  if (plan.format === 'json-array') {
    // Element numbers 1..records: no gaps.
    for (const c of wanted)
      ranges.set(c, { first: c * plan.chunkSize + 1, last: c * plan.chunkSize + chunkRecords(plan, c) });
    return ranges;
  }
  const { rows } = await db.query<{ chunk: number; first: number; last: number }>(
    `select chunk, min(position) as first, max(position) as last
       from (select position, ((row_number() over (order by position)) - 1) / $1 as chunk from ${staging}) p
      where chunk = any($2::int[]) group by chunk`,
    [plan.chunkSize, wanted],
  );
  for (const r of rows) ranges.set(Number(r.chunk), { first: r.first, last: r.last });
  return ranges;
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
    const page = await client.listWorkflows({
      workflow_id_prefix: plan.workflowPrefix,
      loadInput: false,
      loadOutput: false,
      limit: PAGE,
      offset,
    });
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
      await client.forkWorkflow(c.latest.workflowID, 0, {
        newWorkflowID: forkId,
        queueName: TASKS_QUEUE,
        applicationVersion: VERSION,
      });
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

/**
 * Hash, stage (once per ingestion), re-run failed chunks, enqueue the rest. Throws DatasetError for a file that
 * is not JSON records or that changed while it was read; then nothing is staged or enqueued.
 */
export async function enqueueDataset(
  client: DBOSClient,
  db: Db,
  file: string,
  options: EnqueueOptions,
): Promise<IngestPlan & { rerun: Rerun }> {
  const name = options.name ?? datasetName(file);
  const sha256 = await hashFile(file);
  const fileSha = sha256.slice(0, SHA_PREFIX);
  const ingestionKey = `${name}:${fileSha}:c${options.chunkSize}`;
  await options.afterScan?.();
  const staged = await stageDataset(db, { file, name, sha256, chunkSize: options.chunkSize, ingestionKey });
  const plan: IngestPlan = {
    file,
    name,
    format: staged.format,
    records: staged.records,
    sha256,
    chunkSize: options.chunkSize,
    chunks: staged.chunks,
    fileSha,
    ingestionKey,
    ingestionId: staged.ingestionId,
    workflowPrefix: `ingest:${ingestionKey}:`,
    stagedNow: staged.stagedNow,
  };
  const rerun = await rerunUnfinished(client, plan, options.retryCancelled ?? false);
  const existing = await chunkAttempts(client, plan);
  const wanted = Array.from({ length: plan.chunks }, (_, c) => c).filter((c) => !existing.has(c));
  if (wanted.length > 0 && staged.staging === null) {
    throw new Error(
      `ingestion ${ingestionKey}: ${wanted.length} chunk(s) were never enqueued but its staged records are gone; ingest the file with another --chunk-size`,
    );
  }
  const ranges = await chunkRanges(db, plan, staged.staging ?? '', wanted);
  const inFlight = new Set<Promise<void>>();
  let enqueued = 0;
  try {
    for (const c of wanted) {
      const range = ranges.get(c);
      if (!range) throw new Error(`ingestion ${ingestionKey}: no staged records for chunk ${c}`);
      const input: StagedChunk = {
        v: 2,
        dataset: plan.name,
        ingestion: plan.ingestionKey,
        ingestionId: plan.ingestionId,
        fileSha: plan.fileSha,
        chunk: c,
        first: range.first,
        last: range.last,
        records: chunkRecords(plan, c),
      };
      const p: Promise<void> = client
        .enqueue<typeof TaskPipeline.processChunk>(
          {
            queueName: TASKS_QUEUE,
            workflowName: WORKFLOW_NAME,
            workflowClassName: WORKFLOW_CLASS,
            workflowID: chunkWorkflowId(plan, c),
            // Plain JSON, as the workflow declares (DBOS's default, superjson, costs CPU for nothing here).
            serializationType: 'portable',
            // This build's chunks: the service's dispatch speed counts the backlog of its own version.
            appVersion: VERSION,
          },
          input,
        )
        .then(async () => {
          inFlight.delete(p);
          // Counted outside `onProgress?.(…)`: optional chaining skips its arguments when there is no callback,
          // and the notice below then never went out (the service found the chunks at its next idle poll, ~3 s).
          enqueued += 1;
          options.onProgress?.({ enqueued, chunks: plan.chunks });
          // The service's queue goes fast at once (ingestNotice.ts), while the rest is still being enqueued.
          if (enqueued === 1) await noticeEnqueued(db);
        });
      p.catch(() => undefined); // a failure surfaces through Promise.race/all below, never as an unhandled rejection
      inFlight.add(p);
      if (inFlight.size >= ENQUEUE_CONCURRENCY) await Promise.race(inFlight);
    }
  } finally {
    await Promise.allSettled(inFlight);
  }
  await Promise.all(inFlight);
  if (rerun.failed.length + rerun.cancelled.length > 0 && enqueued === 0) await noticeEnqueued(db);
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
  const progress: DatasetProgress = {
    chunks: plan.chunks,
    done: 0,
    failed: 0,
    cancelled: 0,
    records: 0,
    total: plan.records,
  };
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
export async function accountFor(client: DBOSClient, db: Db | pg.Pool, plan: IngestPlan): Promise<Accounting> {
  const totals = await db.query<{ tasks: string }>(
    'select coalesce(sum(tasks), 0) as tasks from ingestion_chunks where ingestion_key = $1',
    [plan.ingestionKey],
  );
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
  return {
    records: plan.records,
    tasks,
    errors: { total: errors, by_kind: byKind },
    noOutcome: plan.records - tasks - errors,
    failedChunks,
    cancelledChunks,
  };
}

/** How often `--wait` counts the chunks whose outcome is written, between its full reads. */
const FINISH_POLL_MS = 100;

/** Chunks of the ingestion whose outcome is on record (a failed chunk has none: the full read sees it). */
async function chunksWritten(db: Db | pg.Pool, plan: IngestPlan): Promise<number> {
  const r = await db.query<{ n: number }>('select count(*)::int as n from ingestion_chunks where ingestion_key = $1', [
    plan.ingestionKey,
  ]);
  return r.rows[0]?.n ?? 0;
}

/** Poll until every chunk's newest attempt has ended (or `timeoutMs` passes: throws), then account. */
export async function waitForDataset(
  client: DBOSClient,
  db: Db | pg.Pool, // a pool when waiting through a database outage (it reconnects)
  plan: IngestPlan,
  options: {
    pollMs: number;
    timeoutMs?: number;
    onProgress?: (p: DatasetProgress) => void;
    /** Called once when the database stops answering (with the error) and once when it is back (undefined). */
    onUnreachable?: (error: string | undefined) => void;
  },
): Promise<Accounting> {
  const deadline = options.timeoutMs ? Date.now() + options.timeoutMs : Infinity;
  // A database outage (a failover, a restart) is waited out like slow chunks: the reads are retried, with a
  // backoff bounded at 5 s, until they answer or the --timeout is reached.
  let unreachable = 0;
  let lastFull = 0;
  for (;;) {
    try {
      // Between full reads (every pollMs: every chunk's workflow), one cheap count every FINISH_POLL_MS notices
      // the last chunk's outcome soon after it commits (a full read every 500 ms left ~250 ms on average).
      if (Date.now() - lastFull < options.pollMs && (await chunksWritten(db, plan)) < plan.chunks) {
        await new Promise((r) => setTimeout(r, FINISH_POLL_MS));
        continue;
      }
      lastFull = Date.now();
      const progress = await datasetProgress(client, plan);
      options.onProgress?.(progress);
      if (progress.done >= plan.chunks) {
        const accounting = await accountFor(client, db, plan);
        if (unreachable > 0) options.onUnreachable?.(undefined);
        return accounting;
      }
      if (unreachable > 0) options.onUnreachable?.(undefined);
      unreachable = 0;
      if (Date.now() > deadline) {
        throw new Error(`timed out: ${progress.done} of ${plan.chunks} chunks finished (is the service running?)`);
      }
    } catch (e) {
      if (!isConnectionError(e)) throw e;
      if (unreachable === 0) options.onUnreachable?.(e instanceof Error ? e.message : String(e));
      unreachable += 1;
      if (Date.now() > deadline)
        throw new Error(`timed out: the database is unreachable (${e instanceof Error ? e.message : String(e)})`);
    }
    await new Promise((r) =>
      setTimeout(
        r,
        unreachable === 0 ? FINISH_POLL_MS : Math.min(5_000, options.pollMs * 2 ** Math.min(unreachable, 4)),
      ),
    );
  }
}
