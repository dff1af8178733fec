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
