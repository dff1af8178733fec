// Schedule control for the CLI and `/api/schedules`: pause, resume and trigger go through the schedules
// store (src/evaluation/scheduleStore.ts: status, audit row and NOTIFY in one transaction), the same path
// the failure policy takes; the engines hear of a change at once and each run's gate checks the row.
import type { DBOSClient } from '@dbos-inc/dbos-sdk';
import type pg from 'pg';
import { BATCH_QUEUE } from '../evaluation/slotContext.js';
import type { ScheduleEvent } from '../evaluation/scheduleEvents.js';
import { SpecSlots } from '../evaluation/scheduleSpec.js';
import {
  getScheduleRow,
  pauseScheduleRow,
  resumeScheduleRow,
  UnknownScheduleError,
  type ScheduleRow,
} from '../evaluation/scheduleStore.js';
import { manualWorkflowIdOf, type SlotContext, DEFAULT_SCHEDULE } from '../evaluation/slotContext.js';
import { BATCH_STATUS_EVENT, batchStatusSchema, type BatchStatus } from '../evaluation/status.js';
import { ScheduleNotFoundError } from '../errors.js';
import type { Queryable } from '../runtime/databases.js';
import { FINISHED_WORKFLOW_STATES } from '../runtime/workflowStates.js';

export interface ScheduleState {
  name: string;
  cron: string;
  status: string;
  last_fired_at: string | null;
  next_slot: string | null;
  queue: string | null;
  automatic_backfill: boolean;
  version: number;
}

/** A connection we can run a transaction on (pg.Client or pool client) or a pool. */
export type TransactionalDb = pg.Client | pg.Pool;

export interface PauseOptions {
  /** Why: shown by `schedule status` and `history`. */
  note?: string | null;
  by: string;
  /** Extra facts for the event (e.g. `consecutive_failures`). */
  details?: Record<string, unknown>;
  scheduleName?: string;
}

export interface ResumeOptions {
  by?: string;
  scheduleName?: string;
}

/** `changed` is false when the schedule already was paused (resp. active): nothing is recorded then. */
export interface ControlResult {
  changed: boolean;
  schedule: ScheduleRow | null;
}

/** A single client used as a transaction source (the CLI holds one connection). */
export function transactionSource(db: TransactionalDb): { connect(): Promise<pg.PoolClient> } {
  if ('totalCount' in db) return db;
  const client = db;
  return { connect: async () => Object.assign(client, { release: () => undefined }) };
}

function notFound<T>(p: Promise<T>, name: string): Promise<T> {
  return p.catch((e: unknown) => {
    throw e instanceof UnknownScheduleError ? new ScheduleNotFoundError(name) : e;
  });
}

/** Pauses the schedule: from the commit on no slot calls the API, under any catch-up policy. */
export async function pauseSchedule(app: TransactionalDb, options: PauseOptions): Promise<ControlResult> {
  const name = options.scheduleName ?? DEFAULT_SCHEDULE;
  return notFound(
    pauseScheduleRow(transactionSource(app), name, {
      note: options.note ?? null,
      by: options.by,
      details: options.details,
    }),
    name,
  );
}

/** Resumes with the next slot (the pause's slots are not caught up). */
export async function resumeSchedule(app: TransactionalDb, options: ResumeOptions = {}): Promise<ControlResult> {
  const name = options.scheduleName ?? DEFAULT_SCHEDULE;
  return notFound(resumeScheduleRow(transactionSource(app), name, options.by ?? 'operator'), name);
}

export async function scheduleState(app: Queryable, name: string = DEFAULT_SCHEDULE): Promise<ScheduleState> {
  const s = await getScheduleRow(app, name);
  if (!s) throw new ScheduleNotFoundError(name);
  const next = s.status === 'ACTIVE' ? (new SpecSlots(s).next(new Date())?.toISOString() ?? null) : null;
  return {
    name: s.name,
    cron: s.cron,
    status: s.status,
    last_fired_at: s.fired_through,
    next_slot: next,
    queue: BATCH_QUEUE,
    automatic_backfill: true,
    version: s.version,
  };
}

/** Enqueues a run now, outside the slot sequence (ID `sched-<name>-trigger-<ISO>`), with the schedule's payload. */
export async function triggerNow(client: DBOSClient, app: Queryable, name: string = DEFAULT_SCHEDULE): Promise<string> {
  if (!(await getScheduleRow(app, name))) throw new ScheduleNotFoundError(name);
  const now = new Date();
  const workflowID = manualWorkflowIdOf(name, now);
  const version = await client.getLatestApplicationVersion();
  const context: SlotContext = { schedule: name, manual: true };
  await client.enqueue(
    {
      workflowName: 'trigger',
      workflowClassName: 'EvaluationBatch',
      queueName: BATCH_QUEUE,
      workflowID,
      appVersion: version.versionName,
    },
    now,
    context,
  );
  return workflowID;
}

/** Waits for the run's final event; null if it did not finish within the timeout. */
export async function waitForOutcome(
  client: DBOSClient,
  workflowId: string,
  timeoutMs: number,
): Promise<BatchStatus | null> {
  const handle = client.retrieveWorkflow(workflowId);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await handle.getStatus();
    if (status && (FINISHED_WORKFLOW_STATES as readonly string[]).includes(status.status)) break;
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
  const event = await client.getEvent<unknown>(workflowId, BATCH_STATUS_EVENT, 0);
  return event === null ? null : batchStatusSchema.parse(event);
}

export type { ScheduleEvent };
