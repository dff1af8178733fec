// The one definition of "a batch run" over the DBOS system tables. The CLI (history, stats) runs these
// SELECTs directly, and the same text becomes the views `xyra.batch_runs` / `xyra.batch_events` (views.ts),
// so what an operator sees in psql and what `xyra history` prints cannot drift apart.
//
// Storage facts (DBOS 5.3, verified against a live system database):
// - `workflow_events.value` / `workflow_events_history.value` are text: superjson-wrapped
//   (`{"json": <value>, "__dbos_serializer": "superjson"}`, column `serialization` = 'js_superjson'),
//   or plain JSON when `serialization` = 'portable_json'.
// - The workflow output lives in `dbos.workflow_output.output` (not workflow_status.output), wrapped the
//   same way per `workflow_status.serialization`.
// - Times in workflow_status are epoch milliseconds (bigint).
import { BATCH_STATUS_EVENT } from '../evaluation/status.js';

export const BATCH_WORKFLOW_NAME = 'trigger';
export const BATCH_WORKFLOW_CLASS = 'EvaluationBatch';

/** Unwraps a DBOS-serialized text value to jsonb, whichever of the two JSON formats wrote it. */
function decoded(valueColumn: string, serializationColumn: string): string {
  return `(case when ${serializationColumn} = 'portable_json' then ${valueColumn}::jsonb else ${valueColumn}::jsonb -> 'json' end)`;
}

/** `sched-evaluation-batch-<ISO>` or `sched-evaluation-batch-trigger-<ISO>` → the slot time. */
export const SLOT_FROM_ID = `substring(s.workflow_uuid from '([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z)$')::timestamptz`;

/**
 * A run's workflow is created at or after its slot (the scheduler enqueues at the slot, a backfill or catch-up
 * later, a manual trigger names the moment it was made), so `created_at >= T - margin` keeps every run whose
 * slot is at or after T. The margin absorbs clock differences between executors and the database.
 */
export const CREATED_AT_MARGIN_MS = 60 * 60_000;

/**
 * One row per batch run, newest slot first when ordered by scheduled_time. `status` is the latest
 * `batch_evaluation_status` event; before the first event it falls back to the DBOS workflow state
 * (`enqueued`, `running`, `error`, `cancelled`).
 *
 * With `createdSinceParam` (a query parameter holding epoch milliseconds), only workflows created since then
 * are read, through DBOS's index on `created_at`: what keeps history and stats fast on a long history.
 */
export function batchRunsSelect(createdSinceParam?: string): string {
  const bound = createdSinceParam ? ` and s.created_at >= ${createdSinceParam}::bigint` : '';
  return `
select
  r.workflow_id,
  r.status,
  r.workflow_status,
  r.manual,
  r.scheduled_time,
  r.actual_time,
  r.completed_at,
  round(extract(epoch from (r.actual_time - r.scheduled_time)) * 1000)::bigint as delay_ms,
  round(extract(epoch from (r.completed_at - coalesce(r.actual_time, r.started_at))) * 1000)::bigint as duration_ms,
  r.processed,
  r.succeeded,
  r.failed,
  r.attempts,
  greatest(r.attempts - 1, 0) as retries,
  r.skipped_reason,
  r.message,
  r.error,
  r.executor_id,
  r.application_version,
  r.recovery_attempts
from (
  select
    s.workflow_uuid as workflow_id,
    coalesce(ev.v ->> 'status', case s.status
      when 'ENQUEUED' then 'enqueued' when 'PENDING' then 'running' when 'SUCCESS' then 'completed'
      when 'CANCELLED' then 'cancelled' else 'error' end) as status,
    s.status as workflow_status,
    s.workflow_uuid like 'sched-evaluation-batch-trigger-%' as manual,
    coalesce((ev.v ->> 'scheduled_time')::timestamptz, ${SLOT_FROM_ID}) as scheduled_time,
    (ev.v ->> 'actual_time')::timestamptz as actual_time,
    to_timestamp(s.started_at_epoch_ms / 1000.0) as started_at,
    case when s.status in ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
      then to_timestamp(coalesce(s.completed_at, s.updated_at) / 1000.0) end as completed_at,
    coalesce((ev.v ->> 'processed')::int, 0) as processed,
    coalesce((ev.v ->> 'succeeded')::int, 0) as succeeded,
    coalesce((ev.v ->> 'failed')::int, 0) as failed,
    -- The output's count when the run finished; otherwise the API-call steps checkpointed so far.
    coalesce((out.v -> 'response' ->> 'attempts')::int,
      (select count(*)::int from dbos.operation_outputs op
        where op.workflow_uuid = s.workflow_uuid and op.function_name = 'callApi')) as attempts,
    out.v ->> 'skipped_reason' as skipped_reason,
    ev.v ->> 'message' as message,
    coalesce(ev.v ->> 'error', left(o.error, 500)) as error,
    s.executor_id,
    s.application_version,
    s.recovery_attempts
  from dbos.workflow_status s
  left join lateral (
    select ${decoded('e.value', 'e.serialization')} as v
    from dbos.workflow_events e
    where e.workflow_uuid = s.workflow_uuid and e.key = '${BATCH_STATUS_EVENT}'
    -- (workflow_uuid, key) is the primary key, so at most one row anyway; the LIMIT keeps Postgres from turning
    -- this into a hash join over every event ever written: one index probe per run read.
    limit 1
  ) ev on true
  left join lateral (
    select o.output, o.error from dbos.workflow_output o where o.workflow_uuid = s.workflow_uuid
    limit 1 -- primary key: one row at most; as above, an index probe per run instead of a scan of all outputs
  ) o on true
  left join lateral (select ${decoded('o.output', 's.serialization')} as v where o.output is not null) out on true
  where s.name = '${BATCH_WORKFLOW_NAME}' and s.class_name = '${BATCH_WORKFLOW_CLASS}'${bound}
) r`;
}

export const BATCH_RUNS_SELECT = batchRunsSelect();

/** Every `batch_evaluation_status` event of every batch run, in the order the run set them. */
export const BATCH_EVENTS_SELECT = `
select
  h.workflow_uuid as workflow_id,
  h.function_id as step,
  v ->> 'status' as status,
  coalesce((v ->> 'processed')::int, 0) as processed,
  coalesce((v ->> 'succeeded')::int, 0) as succeeded,
  coalesce((v ->> 'failed')::int, 0) as failed,
  (v ->> 'scheduled_time')::timestamptz as scheduled_time,
  (v ->> 'actual_time')::timestamptz as actual_time,
  v ->> 'message' as message,
  v ->> 'error' as error,
  to_timestamp(op.completed_at_epoch_ms / 1000.0) as recorded_at
from dbos.workflow_events_history h
cross join lateral (select ${decoded('h.value', 'h.serialization')} as v) d
left join dbos.operation_outputs op on op.workflow_uuid = h.workflow_uuid and op.function_id = h.function_id
where h.key = '${BATCH_STATUS_EVENT}'`;
