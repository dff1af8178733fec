// The one module that reaches into DBOS internals (`@dbos-inc/dbos-sdk/internal/...`) or its private
// formats. Everything else imports from here, so an SDK upgrade that moves or changes them breaks in one
// place, and test/dbosInternals.test.ts pins the behaviour we rely on.
export { TimeMatcher, validateCrontab } from '@dbos-inc/dbos-sdk/internal/scheduler/crontab';

// Recovery of another executor's work (failover). DBOS 5.3 has it only on its executor, not on `DBOS`:
// `recoverPendingWorkflows([id])` calls the system database's `reenqueueWorkflowsForRecovery(id, ourVersion,
// internalQueue)`, one UPDATE that turns that executor's PENDING workflows *of our application version*
// into ENQUEUED (owner token cleared, queue kept, or the internal queue for a workflow that was started
// directly). Any live replica's queue runner then dequeues each exactly once (SELECT … FOR UPDATE + a
// status-guarded UPDATE that sets its own executor ID and a new owner token), and the workflow resumes at
// its first unrecorded step with the same workflow ID. Workflows of other versions are left PENDING.
import { DBOSExecutor } from '@dbos-inc/dbos-sdk/internal/dbos-executor';
import type pg from 'pg';

/** Re-enqueue the PENDING workflows of `executorId` at this process's application version; their IDs. */
export async function recoverExecutorWorkflows(executorId: string): Promise<string[]> {
  const executor = DBOSExecutor.globalInstance;
  if (!executor) throw new Error('recoverExecutorWorkflows: DBOS is not launched');
  const handles = await executor.recoverPendingWorkflows([executorId]);
  return handles.map((h) => h.workflowID);
}
/**
 * DBOS's own queue, polled by every launched process with no concurrency limit (DBOS's scheduler uses it for
 * schedules without a queue). Backfill requests go there: on the batch queue, whose concurrency is 1 under
 * BATCH_CATCH_UP=all, a request waiting for a slot run enqueued on that same queue would wait forever.
 */
export { INTERNAL_QUEUE_NAME as DBOS_INTERNAL_QUEUE } from '@dbos-inc/dbos-sdk/internal/utils';


/** Workflow states DBOS never leaves on its own: the only ones retention may delete. */
export const FINISHED_WORKFLOW_STATES = ['SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED'] as const;

/**
 * Deletes up to `limit` finished workflows that completed at or before `cutoff`, oldest first, with everything
 * DBOS 5.3 keeps for them: `workflow_status` (its foreign keys cascade to workflow_events,
 * workflow_events_history, notifications and streams) and the payload tables that carry no foreign key
 * (workflow_input, workflow_output, operation_outputs — what `DBOS.deleteWorkflows` deletes too).
 *
 * Why not `DBOS.deleteWorkflows(ids)`: it deletes whatever IDs it is given, whatever their state, so between
 * listing and deleting a finished chunk could be re-enqueued under the same ID (`xyra ingest` re-runs failed
 * chunks that way) and be deleted while ENQUEUED. Here the state check, the row lock (`for update skip
 * locked`: a row being changed is left for the next run) and the delete are one statement, one short
 * transaction, bounded by `limit`. Pinned by test/retention.test.ts.
 */
export async function deleteFinishedWorkflows(db: pg.ClientBase, cutoff: Date, limit: number): Promise<number> {
  const { rows } = await db.query<{ deleted: string }>(
    `with doomed as (
       select workflow_uuid from dbos.workflow_status
        where completed_at is not null and completed_at <= $1 and status = any($2::text[])
        order by completed_at
        limit $3
        for update skip locked
     ), gone as (
       delete from dbos.workflow_status s using doomed d where s.workflow_uuid = d.workflow_uuid returning s.workflow_uuid
     ), inputs as (
       delete from dbos.workflow_input where workflow_uuid in (select workflow_uuid from gone)
     ), outputs as (
       delete from dbos.workflow_output where workflow_uuid in (select workflow_uuid from gone)
     ), steps as (
       delete from dbos.operation_outputs where workflow_uuid in (select workflow_uuid from gone)
     )
     select count(*) as deleted from gone`,
    [cutoff.getTime(), [...FINISHED_WORKFLOW_STATES], limit],
  );
  return Number(rows[0]?.deleted ?? 0);
}
