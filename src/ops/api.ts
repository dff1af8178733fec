// `/api/*`: the dashboard's JSON, from the same functions as the CLI's `--json` (one SQL source). Every
// answer is bounded: a LIMIT on every list, a window on the stats.
import type { DBOSClient } from '@dbos-inc/dbos-sdk';
import type pg from 'pg';
import { z } from 'zod';
import { parseDuration, type Config } from '../config.js';
import { ApiRequestError } from '../errors.js';
import { CronSchedule } from '../evaluation/cron.js';
import { SCHEDULE_NAME } from '../evaluation/evaluationBatch.js';
import { listScheduleEvents } from '../evaluation/scheduleEvents.js';
import { latestErrors } from './errorsLog.js';
import { listBatchRuns } from './history.js';
import type { ApiHandler } from './httpServer.js';
import { scheduleState } from './scheduleControl.js';
import { batchStats } from './stats.js';

export interface ApiDeps {
  config: Pick<Config, 'batch'>;
  /** DBOS system database (runs, schedules, chunk workflows). */
  systemPool: pg.Pool;
  /** App database (tasks, errors, schedule_events). */
  appPool: pg.Pool;
  dbosClient: DBOSClient;
}

export const RUNS_LIMIT = { default: 100, max: 1_000 };
export const ERRORS_LIMIT = { default: 20, max: 500 };
export const DATASETS_LIMIT = { default: 10, max: 100 };
const NEXT_SLOTS = 5;
/** Runs read to count consecutive failures: more than the failure-pause threshold anyone sets. */
const FAILURE_STREAK_WINDOW = 100;

function limitParam(query: URLSearchParams, bounds: { default: number; max: number }): number {
  const raw = query.get('limit');
  if (raw === null) return bounds.default;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new ApiRequestError(400, `limit: expected a positive integer, got "${raw}"`);
  return Math.min(Number(raw), bounds.max);
}

async function withClient<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}

/**
 * The schedule as the dashboard shows it. The one place `/api/schedule` is answered from, so it can switch to
 * the `schedule status --json` definition in one line.
 */
export async function dashboardSchedule(deps: ApiDeps, now = new Date()) {
  const state = await scheduleState(deps.dbosClient);
  const timeZone = deps.config.batch.timezone;
  const nextSlots =
    state.status === 'ACTIVE' ? new CronSchedule(state.cron, timeZone).nextSlots(now, NEXT_SLOTS).map((d) => d.toISOString()) : [];
  const recent = await withClient(deps.systemPool, (db) => listBatchRuns(db, { limit: FAILURE_STREAK_WINDOW }));
  // Newest first: failures since the last decided run that was not a failure (in-flight and skipped runs decide nothing).
  let consecutiveFailures = 0;
  for (const run of recent) {
    if (run.status === 'failed' || run.status === 'error') consecutiveFailures++;
    else if (run.status === 'completed') break;
  }
  const [lastPause] = await listScheduleEvents(deps.appPool, { scheduleName: SCHEDULE_NAME, kinds: ['paused', 'resumed'], limit: 1 });
  const pause =
    state.status !== 'ACTIVE' && lastPause?.kind === 'paused' ? { at: lastPause.at, note: lastPause.note, by: lastPause.details.by ?? null } : null;
  return { ...state, time_zone: timeZone, next_slots: nextSlots, consecutive_failures: consecutiveFailures, pause };
}

const num = z.union([z.number(), z.string().transform(Number)]);
const datasetRowSchema = z.object({
  prefix: z.string(),
  chunks: num,
  succeeded_chunks: num,
  failed_chunks: num,
  running_chunks: num,
  records_done: num,
  tasks: num,
  errors: num,
  started_at: num.nullable(),
  last_finished_at: num.nullable(),
});

/**
 * Ingestions (one per dataset name + content hash + chunk size) from their chunk workflows, newest first.
 * Stand-in until `listDatasets` (pipeline/datasetsReport.ts) lands: same inputs, the lead swaps this one call.
 * `records_total` counts unfinished chunks as full, so it is exact once the ingestion has finished.
 */
export async function listDatasetsForDashboard(systemDb: pg.ClientBase, appDb: pg.ClientBase, limit: number) {
  const { rows } = await systemDb.query(
    `with chunks as (
       select substring(s.workflow_uuid from '^(ingest:.*:)[0-9]+$') as prefix, s.status, s.created_at,
              case when s.status in ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED') then coalesce(s.completed_at, s.updated_at) end as finished_at,
              case when s.status = 'SUCCESS' then
                (case when s.serialization = 'portable_json' then o.output::jsonb else o.output::jsonb -> 'json' end) end as result
         from dbos.workflow_status s
         left join dbos.workflow_output o on o.workflow_uuid = s.workflow_uuid and s.status = 'SUCCESS'
        where s.workflow_uuid like 'ingest:%'
     )
     select prefix,
            count(*) as chunks,
            count(*) filter (where status = 'SUCCESS') as succeeded_chunks,
            count(*) filter (where status in ('ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')) as failed_chunks,
            count(*) filter (where status = 'PENDING') as running_chunks,
            coalesce(sum((result ->> 'records')::bigint), 0) as records_done,
            coalesce(sum((result ->> 'tasks')::bigint), 0) as tasks,
            coalesce(sum((result ->> 'errors')::bigint), 0) as errors,
            min(created_at) as started_at,
            max(finished_at) as last_finished_at
       from chunks where prefix is not null
      group by prefix
      order by min(created_at) desc
      limit $1`,
    [limit],
  );
  const out = [];
  for (const raw of rows) {
    const r = datasetRowSchema.parse(raw);
    const [, dataset = '', sha = '', chunkPart = ''] = /^ingest:(.*):([0-9a-f]+):c(\d+):$/.exec(r.prefix) ?? [];
    const chunkSize = Number(chunkPart);
    const unfinished = r.chunks - r.succeeded_chunks - r.failed_chunks;
    // Errors by kind come from the `errors` table (key `<dataset>:<record id>`); a dataset name shared by two
    // ingestions shares its errors.
    const kinds = await appDb.query(
      `select coalesce(message ->> 'kind', 'unknown') as kind, count(*) as n from errors
        where left(error_key, length($1) + 1) = $1 || ':' group by 1 order by 2 desc`,
      [dataset],
    );
    const elapsedS = r.started_at !== null && r.last_finished_at !== null ? (r.last_finished_at - r.started_at) / 1000 : null;
    out.push({
      dataset,
      content_sha256_prefix: sha,
      workflow_prefix: r.prefix,
      chunk_size: chunkSize,
      chunks: { total: r.chunks, succeeded: r.succeeded_chunks, failed: r.failed_chunks, running: r.running_chunks, queued: unfinished - r.running_chunks },
      records: r.records_done + (r.failed_chunks + unfinished) * chunkSize,
      records_done: r.records_done,
      tasks: r.tasks,
      errors: r.errors,
      errors_by_kind: Object.fromEntries(kinds.rows.map((k: { kind: string; n: string | number }) => [k.kind, Number(k.n)])),
      started_at: r.started_at === null ? null : new Date(r.started_at).toISOString(),
      finished_at: unfinished === 0 && r.last_finished_at !== null ? new Date(r.last_finished_at).toISOString() : null,
      records_per_s: elapsedS !== null && elapsedS > 0 ? Math.round(r.records_done / elapsedS) : null,
      state: unfinished > 0 ? 'running' : r.failed_chunks > 0 ? 'failed' : 'completed',
    });
  }
  return out;
}

export function createApi(deps: ApiDeps): ApiHandler {
  return async (name, query) => {
    switch (name) {
      case 'schedule':
        return dashboardSchedule(deps);
      case 'runs': {
        const limit = limitParam(query, RUNS_LIMIT);
        return withClient(deps.systemPool, (db) => listBatchRuns(db, { limit }));
      }
      case 'stats': {
        let windowMs: number;
        try {
          windowMs = parseDuration(query.get('since') ?? '24h');
        } catch (e) {
          throw new ApiRequestError(400, `since: ${(e as Error).message}`);
        }
        return withClient(deps.systemPool, (db) => batchStats(db, windowMs));
      }
      case 'errors': {
        const limit = limitParam(query, ERRORS_LIMIT);
        return withClient(deps.appPool, (db) => latestErrors(db, limit));
      }
      case 'datasets': {
        const limit = limitParam(query, DATASETS_LIMIT);
        return withClient(deps.systemPool, (sys) => withClient(deps.appPool, (app) => listDatasetsForDashboard(sys, app, limit)));
      }
      default:
        return undefined;
    }
  };
}
