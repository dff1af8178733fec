// One SQL source for "what became of each ingestion": `xyra datasets` and the dashboard's `/api/datasets` both
// call listDatasets. Every query is bounded by `limit` ingestions and served by an index: `ingestions` by
// started_at, `ingestion_chunks` by its primary key (ingestion_key, chunk), DBOS's workflow_status through its
// partial indexes on failed (status in ERROR/CANCELLED/…) and in-flight (queue, ENQUEUED/PENDING) workflows.
import type pg from 'pg';
import { z } from 'zod';
import { ERROR_KINDS, type ErrorKind } from './records.js';
import { parseChunkWorkflowId } from './ingest.js';
import { TASKS_QUEUE } from './taskPipeline.js';

type Db = pg.Client | pg.Pool | pg.PoolClient;

export type IngestionState = 'running' | 'done' | 'failed';

export interface DatasetReport {
  dataset: string;
  file_name: string;
  sha256_prefix: string;
  chunk_size: number;
  records: number;
  records_done: number;
  tasks: number;
  errors: { total: number; by_kind: Record<ErrorKind, number> };
  chunks: { total: number; done: number; failed: number; cancelled: number };
  started_at: string;
  finished_at: string | null;
  records_per_s: number;
  state: IngestionState;
}

const ingestionRow = z.object({
  ingestion_key: z.string(),
  dataset: z.string(),
  file_name: z.string(),
  sha256: z.string(),
  chunk_size: z.number(),
  records: z.number(),
  chunks: z.number(),
  started_at: z.date(),
});

const chunkTotalsRow = z.object({
  ingestion_key: z.string(),
  done: z.coerce.number(),
  records: z.coerce.number(),
  tasks: z.coerce.number(),
  finished_at: z.date().nullable(),
});

const kindRow = z.object({ ingestion_key: z.string(), kind: z.string(), n: z.coerce.number() });
const doneChunkRow = z.object({ ingestion_key: z.string(), chunk: z.number() });
const workflowRow = z.object({ workflow_uuid: z.string(), status: z.string() });

export async function listDatasets(systemDb: Db, appDb: Db, options: { limit: number }): Promise<DatasetReport[]> {
  const ingestions = z.array(ingestionRow).parse(
    (
      await appDb.query(
        `select ingestion_key, dataset, file_name, sha256, chunk_size, records, chunks, started_at
           from ingestions order by started_at desc, id desc limit $1`,
        [options.limit],
      )
    ).rows,
  );
  if (ingestions.length === 0) return [];
  const keys = ingestions.map((i) => i.ingestion_key);
  const totals = z.array(chunkTotalsRow).parse(
    (
      await appDb.query(
        `select ingestion_key, count(*) as done, sum(records) as records, sum(tasks) as tasks, max(finished_at) as finished_at
         from ingestion_chunks where ingestion_key = any($1) group by ingestion_key`,
        [keys],
      )
    ).rows,
  );
  const kinds = z.array(kindRow).parse(
    (
      await appDb.query(
        `select c.ingestion_key, e.key as kind, sum(e.value::int) as n
         from ingestion_chunks c cross join lateral jsonb_each_text(c.errors) e
         where c.ingestion_key = any($1) group by c.ingestion_key, e.key`,
        [keys],
      )
    ).rows,
  );
  const prefixes = keys.map((k) => `ingest:${k}:%`);
  // Attempts that ended without success, and attempts still queued or running, of these ingestions' chunks.
  const failedAttempts = z.array(workflowRow).parse(
    (
      await systemDb.query(
        `select workflow_uuid, status from dbos.workflow_status
         where status in ('ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED') and workflow_uuid like any($1)`,
        [prefixes],
      )
    ).rows,
  );
  const inFlight = z.array(workflowRow).parse(
    (
      await systemDb.query(
        `select workflow_uuid, status from dbos.workflow_status
         where queue_name = $2 and status in ('ENQUEUED', 'PENDING') and workflow_uuid like any($1)`,
        [prefixes, TASKS_QUEUE],
      )
    ).rows,
  );
  // Chunks that failed at some point may have succeeded since: ask only about those.
  const failedChunks = new Map<string, Map<number, { attempt: number; status: string }>>();
  for (const w of failedAttempts) {
    for (const key of keys) {
      const id = parseChunkWorkflowId(w.workflow_uuid, `ingest:${key}:`);
      if (!id) continue;
      const perChunk = failedChunks.get(key) ?? new Map<number, { attempt: number; status: string }>();
      const seen = perChunk.get(id.chunk);
      if (!seen || seen.attempt < id.attempt) perChunk.set(id.chunk, { attempt: id.attempt, status: w.status });
      failedChunks.set(key, perChunk);
    }
  }
  const asked = [...failedChunks.entries()].flatMap(([key, m]) => [...m.keys()].map((chunk) => ({ key, chunk })));
  const done =
    asked.length === 0
      ? []
      : z.array(doneChunkRow).parse(
          (
            await appDb.query(
              `select ingestion_key, chunk from ingestion_chunks
               where (ingestion_key, chunk) in (select * from unnest($1::text[], $2::int[]))`,
              [asked.map((a) => a.key), asked.map((a) => a.chunk)],
            )
          ).rows,
        );
  const doneSet = new Set(done.map((d) => `${d.ingestion_key}\n${d.chunk}`));
  const inFlightChunks = new Set<string>();
  for (const w of inFlight) {
    for (const key of keys) {
      const id = parseChunkWorkflowId(w.workflow_uuid, `ingest:${key}:`);
      if (id) inFlightChunks.add(`${key}\n${id.chunk}`);
    }
  }

  return ingestions.map((ing) => {
    const t = totals.find((x) => x.ingestion_key === ing.ingestion_key);
    const byKind = Object.fromEntries(ERROR_KINDS.map((k) => [k, 0])) as Record<ErrorKind, number>;
    for (const k of kinds) if (k.ingestion_key === ing.ingestion_key) byKind[k.kind as ErrorKind] = k.n;
    let failed = 0;
    let cancelled = 0;
    for (const [chunk, f] of failedChunks.get(ing.ingestion_key) ?? []) {
      const where = `${ing.ingestion_key}\n${chunk}`;
      if (doneSet.has(where) || inFlightChunks.has(where)) continue;
      if (f.status === 'CANCELLED') cancelled++;
      else failed++;
    }
    const doneChunks = t?.done ?? 0;
    const state: IngestionState =
      doneChunks + failed + cancelled < ing.chunks ? 'running' : failed + cancelled > 0 ? 'failed' : 'done';
    const finishedAt = state === 'running' ? null : (t?.finished_at ?? null);
    const recordsDone = t?.records ?? 0;
    const seconds = Math.max(0.001, ((finishedAt ?? new Date()).getTime() - ing.started_at.getTime()) / 1000);
    return {
      dataset: ing.dataset,
      file_name: ing.file_name,
      sha256_prefix: ing.sha256.slice(0, 12),
      chunk_size: ing.chunk_size,
      records: ing.records,
      records_done: recordsDone,
      tasks: t?.tasks ?? 0,
      errors: { total: Object.values(byKind).reduce((a, b) => a + b, 0), by_kind: byKind },
      chunks: { total: ing.chunks, done: doneChunks, failed, cancelled },
      started_at: ing.started_at.toISOString(),
      finished_at: finishedAt?.toISOString() ?? null,
      records_per_s: Math.round(recordsDone / seconds),
      state,
    };
  });
}
