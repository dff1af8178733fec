// Schedule control. Pause and resume write DBOS's schedule row directly (through the internals adapter)
// and record the change in `schedule_events`, so the CLI, the service's failure policy and the dashboard
// all pause the same way; the running service's scheduler picks the status up within its 5 s poll, and
// the firing engine and each run's gate check it at once (see src/evaluation/pauseGate.ts).
import type { DBOSClient } from '@dbos-inc/dbos-sdk';
import { CronSchedule } from '../evaluation/cron.js';
import { SCHEDULE_NAME } from '../evaluation/evaluationBatch.js';
import { listScheduleEvents, recordScheduleEvent, type ScheduleEvent } from '../evaluation/scheduleEvents.js';
import { BATCH_STATUS_EVENT, batchStatusSchema, type BatchStatus } from '../evaluation/status.js';
import { readScheduleRow, scheduleTableExists, setScheduleStatus, type Queryable } from '../runtime/dbosInternals.js';
import { ScheduleNotFoundError } from '../errors.js';

export interface ScheduleState {
  name: string;
  cron: string;
  status: string;
  last_fired_at: string | null;
  next_slot: string | null;
  queue: string | null;
  automatic_backfill: boolean;
}

/** The two databases schedule control touches: DBOS's system database and the app database. */
export interface ScheduleDatabases {
  /** DBOS system database (the schedule row). */
  system: Queryable;
  /** App database (`schedule_events`). */
  app: Queryable;
}

export interface PauseOptions {
  /** Why: shown by `schedule status` and `history`. */
  note?: string | null;
  by: 'operator' | 'failure_policy';
  /** Extra facts for the event (e.g. `consecutive_failures`). */
  details?: Record<string, unknown>;
  scheduleName?: string;
}

export interface ResumeOptions {
  by?: 'operator';
  scheduleName?: string;
}

/** `changed` is false when the schedule already was paused (resp. active): nothing is recorded then. */
export interface ControlResult {
  changed: boolean;
  event: ScheduleEvent | null;
}

/**
 * Pauses the schedule. From this instant no slot calls the API, under any catch-up policy: DBOS's loop stops
 * at its next poll, and every run whose slot falls inside a pause is skipped by its gate.
 */
export async function pauseSchedule(dbs: ScheduleDatabases, options: PauseOptions): Promise<ControlResult> {
  const name = options.scheduleName ?? SCHEDULE_NAME;
  const changed = await setScheduleStatus(dbs.system, name, 'PAUSED');
  if (!changed) {
    await assertScheduleExists(dbs.system, name);
    return { changed: false, event: null };
  }
  const event = await recordScheduleEvent(dbs.app, {
    scheduleName: name,
    kind: 'paused',
    note: options.note ?? null,
    details: { by: options.by, ...options.details },
  });
  return { changed: true, event };
}

/**
 * Resumes the schedule: it continues with the next slot. `last_fired_at` moves to now in the same
 * statement, so DBOS's automatic backfill (which runs when its loop restarts) creates no slot of the pause.
 */
export async function resumeSchedule(dbs: ScheduleDatabases, options: ResumeOptions = {}): Promise<ControlResult> {
  const name = options.scheduleName ?? SCHEDULE_NAME;
  const now = await databaseNow(dbs.system);
  const changed = await setScheduleStatus(dbs.system, name, 'ACTIVE', now);
  if (!changed) {
    await assertScheduleExists(dbs.system, name);
    return { changed: false, event: null };
  }
  const [paused] = await listScheduleEvents(dbs.app, { scheduleName: name, kinds: ['paused'], limit: 1 });
  const event = await recordScheduleEvent(dbs.app, {
    scheduleName: name,
    kind: 'resumed',
    at: now,
    details: { by: options.by ?? 'operator', ...(paused ? { paused_at: paused.at } : {}) },
  });
  return { changed: true, event };
}

async function databaseNow(db: Queryable): Promise<Date> {
  const { rows } = await db.query('select now() as now');
  return (rows[0] as { now: Date }).now;
}

async function assertScheduleExists(db: Queryable, name: string): Promise<void> {
  const table = await scheduleTableExists(db);
  if (!table || !(await readScheduleRow(db, name))) throw new ScheduleNotFoundError(name);
}

export async function scheduleState(client: DBOSClient): Promise<ScheduleState> {
  const s = await client.getSchedule(SCHEDULE_NAME);
  if (!s) throw new ScheduleNotFoundError(SCHEDULE_NAME);
  const next = s.status === 'ACTIVE' ? new CronSchedule(s.schedule, s.cronTimezone ?? 'UTC').next(new Date()).toISOString() : null;
  return {
    name: s.scheduleName,
    cron: s.schedule,
    status: s.status,
    last_fired_at: s.lastFiredAt,
    next_slot: next,
    queue: s.queueName,
    automatic_backfill: s.automaticBackfill,
  };
}

/** Enqueues a run now, outside the slot sequence (ID `sched-evaluation-batch-trigger-<ISO>`). */
export async function triggerNow(client: DBOSClient): Promise<string> {
  const handle = await client.triggerSchedule(SCHEDULE_NAME);
  return handle.workflowID;
}

/** Waits for the run's final event; null if it did not finish within the timeout. */
export async function waitForOutcome(client: DBOSClient, workflowId: string, timeoutMs: number): Promise<BatchStatus | null> {
  const handle = client.retrieveWorkflow(workflowId);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await handle.getStatus();
    if (status && !['ENQUEUED', 'PENDING', 'DELAYED'].includes(status.status)) break;
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
  const event = await client.getEvent<unknown>(workflowId, BATCH_STATUS_EVENT, 0);
  return event === null ? null : batchStatusSchema.parse(event);
}
