// The one module that reaches into DBOS internals (`@dbos-inc/dbos-sdk/internal/...`) or its private
// formats. Everything else imports from here, so an SDK upgrade that moves or changes them breaks in one
// place, and test/dbosInternals*.test.ts pin the behaviour we rely on.

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

/**
 * True when a workflow whose ID starts with `prefix` has not finished, or finished after `since` (epoch ms
 * columns of DBOS 5.3's `workflow_status`; a finished row without `completed_at` counts by `updated_at`).
 * Staging expiry (pipeline/stagingExpiry.ts) keeps an ingestion's records while any of its chunks could use them.
 */
export async function workflowsActiveSince(db: Queryable, prefix: string, since: Date): Promise<boolean> {
  const { rows } = await db.query(
    `select 1 from dbos.workflow_status
      where starts_with(workflow_uuid, $1)
        and (status <> all($2::text[]) or coalesce(completed_at, updated_at) > $3)
      limit 1`,
    [prefix, [...FINISHED_WORKFLOW_STATES], since.getTime()],
  );
  return rows.length > 0;
}

// Schedules: DBOS's scheduler fires none of ours (src/evaluation/engine.ts; docs/design.md, "One engine"). A
// slot's run is started by our engine and then marked like one DBOS's scheduler would have enqueued.
import { z } from 'zod';
import { FINISHED_WORKFLOW_STATES } from './workflowStates.js';
import type { Queryable } from './databases.js';
export type { Queryable };
import type pg from 'pg';

/**
 * Sets `schedule_name` and `queue_name` on workflow rows started by our firing engine through
 * `DBOS.startWorkflow` (which has neither option), so each run looks like one DBOS's scheduler
 * enqueued: listed as a scheduled run, counted against the batch queue's concurrency. The rows are PENDING, so the
 * queue runner never dequeues them. One statement for all the runs a slot instant started (a herd of 500 schedules
 * due at :00 is one UPDATE, not 500).
 */
export async function markScheduledRuns(
  db: Queryable,
  runs: ReadonlyArray<{ workflowId: string; scheduleName: string }>,
  queueName: string,
): Promise<void> {
  if (runs.length === 0) return;
  await db.query(
    `update dbos.workflow_status s set schedule_name = v.schedule_name, queue_name = coalesce(s.queue_name, $3)
       from unnest($1::text[], $2::text[]) as v(workflow_uuid, schedule_name)
      where s.workflow_uuid = v.workflow_uuid and (s.schedule_name is null or s.queue_name is null)`,
    [runs.map((r) => r.workflowId), runs.map((r) => r.scheduleName), queueName],
  );
}

/**
 * Makes DBOS's queue runner poll a queue just registered (or re-registered) with `DBOS.registerQueue` at its
 * new interval from now on. Without this, a queue registered after launch (DBOS 5.x registers them only then)
 * joins the runner at its next reconcile (every few seconds: QUEUE_MAINTENANCE_MS), and a lowered interval
 * reaches it only after its next (slow) poll and a gradual 0.9x scale-back: a 100,000-record ingest enqueued
 * right after start waited 2-3 s for its first chunk. Reaches the runner's private per-queue state
 * (`wfQueueRunner.states`: { queue, currentPollingMs, nextPollAt }) and its `ensureState`, which is how its
 * own reconcile adds a queue. A faster interval also polls the queue at once: the runner is woken from its
 * sleep (installQueueRunnerWake), which otherwise lasts until its queues' next polls (up to the idle interval:
 * on average 400 ms of a 2 s ingest). Returns false when the runner is not running or DBOS changed the shape
 * (polling then stays as the queue's row says, from its next reconcile).
 */
import { wfQueueRunner } from '@dbos-inc/dbos-sdk/internal/wfqueue';
import type { WorkflowQueue } from '@dbos-inc/dbos-sdk';

interface QueuePollState {
  currentPollingMs: number;
  nextPollAt: number;
  /** The runner's in-memory queue: its minimum clamps every poll's interval until the next reconcile. */
  queue?: { minPollingIntervalMs?: number };
}

interface QueueRunnerInternals {
  isRunning?: boolean;
  listenQueueNames?: Set<string> | null;
  states?: Map<string, Partial<QueuePollState>>;
  ensureState?: (queue: WorkflowQueue, now: number) => void;
}

export function applyQueueRegistrationNow(queue: WorkflowQueue): boolean {
  // Private members of the runner (TypeScript `private`), reached deliberately here and nowhere else.
  const runner = wfQueueRunner as unknown as QueueRunnerInternals;
  const ms = queue.minPollingIntervalMs;
  if (runner.isRunning !== true || !(runner.states instanceof Map) || typeof runner.ensureState !== 'function')
    return false;
  if (typeof ms !== 'number') return false;
  if (runner.listenQueueNames && !runner.listenQueueNames.has(queue.name)) return false; // not ours to poll
  const state = runner.states.get(queue.name);
  if (!state) {
    runner.ensureState.call(runner, queue, Date.now()); // first poll one interval from now
    return runner.states.has(queue.name);
  }
  if (typeof state.currentPollingMs !== 'number' || typeof state.nextPollAt !== 'number') return false;
  const faster = ms < state.currentPollingMs;
  // The registered queue replaces the runner's copy, as its reconcile would: its minimum clamps every poll.
  state.queue = queue;
  state.currentPollingMs = ms;
  state.nextPollAt = faster ? Date.now() : Math.min(state.nextPollAt, Date.now() + ms);
  if (faster) wakeRunner?.();
  return true;
}

let wakeRunner: (() => void) | undefined;

/**
 * Lets applyQueueRegistrationNow wake DBOS's queue runner from its sleep. The runner's loop passes its `wake`
 * (what a finished poll calls to end the loop's sleep) to `scheduleDueQueues` on every pass; a wrapper on the
 * runner instance keeps the latest one. Install before launch. Returns false when DBOS changed the shape
 * (then a faster interval takes effect when the runner next wakes, as before).
 */
export function installQueueRunnerWake(): boolean {
  const runner = wfQueueRunner as unknown as { scheduleDueQueues?: (...args: unknown[]) => unknown };
  const original = runner.scheduleDueQueues;
  // (exec, now, maxConcurrentQueueDispatches, inFlightPolls, wake) in DBOS 5.3.
  if (typeof original !== 'function' || original.length !== 5) return false;
  if ((original as { xyraWake?: boolean }).xyraWake) return true; // installed already (a relaunch)
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    const wake = args[4];
    if (typeof wake === 'function') wakeRunner = wake as () => void;
    return original.apply(this, args);
  };
  Object.assign(wrapped, { xyraWake: true });
  runner.scheduleDueQueues = wrapped;
  return true;
}

/** Ends the queue runner's current sleep (its loop then polls whatever is due). False before its first pass. */
export function wakeQueueRunner(): boolean {
  if (!wakeRunner) return false;
  wakeRunner();
  return true;
}

/**
 * DBOS's queue runner re-reads every queue's row and moves DELAYED workflows to ENQUEUED once a second each:
 * about half of an idle replica's commits. We use no delayed/debounced workflows, and queue-row changes (the
 * tasks queue's adaptive polling) may reach other replicas a few seconds later, so both run every `ms`.
 * Static fields of the runner's (unexported) class, reached through its instance.
 */
export function setQueueMaintenanceInterval(ms: number): boolean {
  const runnerClass = wfQueueRunner.constructor as unknown as {
    reconcileIntervalMs?: number;
    transitionIntervalMs?: number;
  };
  if (typeof runnerClass.reconcileIntervalMs !== 'number' || typeof runnerClass.transitionIntervalMs !== 'number')
    return false;
  runnerClass.reconcileIntervalMs = ms;
  runnerClass.transitionIntervalMs = ms;
  return true;
}

/**
 * DBOS sweeps the system database for workflows past their deadline once a second (one commit each: a fifth of an
 * idle replica's). We start no workflow with a timeout, so the sweep has nothing to find; it runs every `ms`
 * instead (a timeout set by a tool would be enforced up to `ms` late). A field of an exported config object in its
 * internal workflow_management module, read by the sweep before each wait.
 */
import { workflowTimeoutConfig } from '@dbos-inc/dbos-sdk/internal/workflow_management';

export function setDeadlineSweepInterval(ms: number): boolean {
  const config = workflowTimeoutConfig as { pollingIntervalMs?: unknown };
  if (typeof config.pollingIntervalMs !== 'number') return false;
  config.pollingIntervalMs = ms;
  return true;
}

// The execution fence (src/runtime/executionFence.ts) needs to know which execution reaches it. DBOS 5.3 keeps
// each execution's owner token in its async context (`currentOwnerXid`, set by every path that runs a
// workflow: start, dequeue, recovery) and checks it in the system database before recording a step or an
// outcome. A stale execution (its workflow re-enqueued by a takeover, then dequeued with a new token) is
// refused there; the fence uses the same token to refuse it a step before it does anything.
import { currentOwnerXid } from '@dbos-inc/dbos-sdk/internal/context';
import { DBOS } from '@dbos-inc/dbos-sdk';
import { dbRetryConfig } from '@dbos-inc/dbos-sdk/internal/utils';

/** The calling workflow execution (ID, owner token), or undefined outside a workflow. */
export function currentExecution(): { workflowId: string; ownerXid: string } | undefined {
  const workflowId = DBOS.workflowID;
  if (workflowId === undefined) return undefined;
  const ownerXid = currentOwnerXid(workflowId);
  return ownerXid === undefined || ownerXid === null ? undefined : { workflowId, ownerXid };
}

/** Does the execution with `ownerXid` still own `workflowId` (PENDING under that token)? */
export async function executionOwnsWorkflow(db: Queryable, workflowId: string, ownerXid: string): Promise<boolean> {
  const { rows } = await db.query(
    `select status = 'PENDING' and owner_xid = $2 as owns from dbos.workflow_status where workflow_uuid = $1`,
    [workflowId, ownerXid],
  );
  return (rows[0] as { owns?: boolean } | undefined)?.owns === true;
}

/**
 * DBOS retries every system-database operation of a workflow on a connection error, forever, with a backoff
 * that doubles up to `dbRetryConfig.maxBackoffSec` (60 s): after a 90 s outage a blocked step could wait up to
 * another 90 s before its next try. It is read on every retry, so lowering it bounds how late work resumes.
 */
export function setDbRetryMaxBackoff(seconds: number): boolean {
  if (typeof dbRetryConfig?.maxBackoffSec !== 'number') return false;
  dbRetryConfig.maxBackoffSec = seconds;
  return true;
}

/**
 * DBOS's log lines for each such retry ("Database connection failed: … Retrying in …", one per try) and for
 * each idle pooled connection a restarting server closes ("Unexpected error in pool: …"), and for a borrowed
 * connection it closes ("Unexpected error on a system database connection: …"): noise that says
 * nothing an outage's one line does not (runtime/databaseOutage.ts).
 */
export const DBOS_CONNECTION_NOISE =
  /^(Database connection failed: |Unexpected error in pool: |Unexpected error on a system database connection: )/;

/**
 * DBOS's warning (with a stack trace) when a workflow is started without a queue under an ID whose row already
 * names one: what a slot's second start looks like (two replicas, or a herd's backup start, after the first start
 * marked the run as the batch queue's, markScheduledRuns). Expected and harmless (the run is deduplicated), and a
 * herd made hundreds of them a slot, so it is demoted to debug.
 */
export const DBOS_SLOT_START_RACE =
  /^Workflow \(sched-[^)]*\) already exists in queue: [^,]+, but the provided queue name is: undefined\./;

// Upgrade from the version before schedules were data: DBOS's own scheduler fired `evaluation-batch`, from its
// row in `dbos.workflow_schedules` (DBOS 5.3: `schedule` the cron, `cron_timezone`, `status` ACTIVE/PAUSED, and
// `last_fired_at`, TEXT holding the ISO instant of the last slot fired, which that version also moved on each of
// its own precise firings). That row is the only record of where firing stopped. (The older `dbos.scheduler_state`
// table of decorator schedules is dropped by DBOS 5.3's own migrations.) Pinned by test/dbosInternals.test.ts.

export interface DbosScheduleRow {
  cron: string;
  timezone: string | null;
  status: string;
  /** The last slot DBOS (or our firing on its behalf) fired; null when it never fired. */
  lastFiredAt: Date | null;
}

const dbosScheduleSchema = z.object({
  schedule: z.string(),
  cron_timezone: z.string().nullable(),
  status: z.string(),
  last_fired_at: z.string().nullable(),
});

/** DBOS's schedule row of `name`, or null (no row, or a system database DBOS has not migrated yet). */
export async function readDbosSchedule(db: Queryable, name: string): Promise<DbosScheduleRow | null> {
  const { rows: present } = await db.query(`select to_regclass('dbos.workflow_schedules') is not null as present`);
  if ((present[0] as { present?: boolean } | undefined)?.present !== true) return null;
  const { rows } = await db.query(
    `select schedule, cron_timezone, status, last_fired_at from dbos.workflow_schedules where schedule_name = $1`,
    [name],
  );
  if (!rows[0]) return null;
  const row = dbosScheduleSchema.parse(rows[0]);
  const fired = row.last_fired_at === null ? null : new Date(row.last_fired_at);
  return {
    cron: row.schedule,
    timezone: row.cron_timezone,
    status: row.status,
    lastFiredAt: fired === null || Number.isNaN(fired.getTime()) ? null : fired,
  };
}

/**
 * Deletes DBOS's schedule row of `name` (what `DBOS.deleteSchedule` does), usable before DBOS launches so its
 * scheduler never starts a loop (nor an automatic backfill) for it. True when a row was deleted.
 */
export async function deleteDbosSchedule(db: Queryable, name: string): Promise<boolean> {
  const { rows: present } = await db.query(`select to_regclass('dbos.workflow_schedules') is not null as present`);
  if ((present[0] as { present?: boolean } | undefined)?.present !== true) return false;
  const { rowCount } = await db.query(`delete from dbos.workflow_schedules where schedule_name = $1`, [name]);
  return (rowCount ?? 0) > 0;
}
