// The evaluation batch trigger: one durable workflow run per cron slot.
//
// Every decision the run makes is taken inside a step, so a run recovered after a crash replays the
// recorded decisions (actual start time, catch-up and overlap verdicts, each API attempt) instead of
// making them again. Each API attempt is its own step and the backoff between attempts is a durable
// DBOS.sleep, so a crash mid-retry resumes at the next attempt with the same idempotency key.
import { DBOS } from '@dbos-inc/dbos-sdk';
import { fenced, passFence } from '../runtime/executionFence.js';
import type pg from 'pg';
import { redact, redactValue } from '../logger.js';
import type { Logger } from '../logger.js';
import { recordBatchRun, recordScheduleLag } from '../telemetry/metrics.js';
import { decideCatchUp } from './catchUp.js';
import { systemClock } from './clock.js';
import { CronSchedule } from './cron.js';
import { applyFailurePolicy } from './failurePolicy.js';
import { pauseCovering } from './pauseGate.js';
import { enterGate, releaseGate, waitAsBuffered, type ExecutorAliveCheck } from './overlapGuard.js';
import { SpecSlots } from './scheduleSpec.js';
import { getScheduleRowSettled, versionSupersededAt } from './scheduleStore.js';
import { MAX_FIRE_LEAD_MS, readSlotContext, type SlotContext } from './slotContext.js';
import { BATCH_STATUS_EVENT, type BatchRunOutput, type BatchStatus } from './status.js';
import {
  backoffDelayMs,
  callEvaluationBatch,
  DEFAULT_SKIP_MESSAGE,
  type AttemptOutcome,
  type XyraRequest,
} from './xyraClient.js';

/** Passing an open fence takes microseconds; a fence that held a run (≥ its 250 ms re-check) takes longer. */
const FENCE_HELD_MS = 50;
/** The overlap guard speaks the API's own words for the same situation (its 409). */
export const IN_PROGRESS_MESSAGE = DEFAULT_SKIP_MESSAGE;

export interface EvaluationSettings {
  apiUrl: string;
  apiToken: string | undefined;
  /** `batch_size_limit` when a schedule's payload has none (BATCH_SIZE_LIMIT). */
  batchSizeLimit: number;
  timeoutMs: number;
  connectTimeoutMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Whether a PENDING run's executor is alive (failover's view): runs of dead executors block nothing. */
  isExecutorAlive: ExecutorAliveCheck;
  /** A small pool on the DBOS system database, for the overlap guard's query. */
  systemPool: pg.Pool;
  /** A small pool on the app database (the `schedules` row, `schedule_events`: was this slot inside a pause?). */
  appPool: pg.Pool;
  logger: Logger;
}

let settings: EvaluationSettings | undefined;
/**
 * When this process started (before its module loading, which takes seconds on a loaded machine): slots
 * due before it were missed while no process ran.
 */
let upSince: Date | undefined;

/** Called once at start-up, before DBOS launches: workflows read their settings from here, never from
 * their inputs, so the API token is never stored in the system database. */
export function configureEvaluationBatch(s: EvaluationSettings): void {
  settings = s;
  upSince = new Date(performance.timeOrigin);
}

/**
 * The engine fired nothing while fenced (a database outage): slots before the instant it resumed were missed
 * like slots before start-up, so catch-up policy "latest" runs only the newest of them.
 */
export function firingResumedAt(at: Date): void {
  if (!upSince || at.getTime() > upSince.getTime()) upSince = at;
}

function current(): EvaluationSettings {
  if (!settings) throw new Error('EvaluationBatch used before configureEvaluationBatch()');
  return settings;
}

interface Gate {
  run: boolean;
  reason?: NonNullable<BatchRunOutput['skipped_reason']>;
  message?: string;
  /** The schedule's payload (of the version that runs), decided with the gate so a replay sends the same. */
  payload?: Record<string, unknown>;
}

interface AttemptRecord {
  outcome: AttemptOutcome;
  /** Delay before the next attempt, decided in the step so a replay waits the same. */
  nextDelayMs: number;
}

function isManualRun(ctx: SlotContext): boolean {
  return ctx.manual === true;
}

function finalStatusOf(
  outcome: AttemptOutcome,
): Pick<BatchStatus, 'status' | 'processed' | 'succeeded' | 'failed' | 'message' | 'error'> {
  switch (outcome.kind) {
    case 'completed':
      return {
        status: 'completed',
        processed: outcome.processed,
        succeeded: outcome.succeeded,
        failed: outcome.failed,
      };
    case 'triggered':
      return {
        status: 'triggered',
        processed: outcome.processed,
        succeeded: outcome.succeeded,
        failed: outcome.failed,
        message: outcome.message ?? 'Accepted by the Xyra Analytics API; evaluation runs remotely',
      };
    case 'skipped':
      return { status: 'skipped', processed: 0, succeeded: 0, failed: 0, message: outcome.message };
    case 'retryable':
    case 'fatal':
      return { status: 'failed', processed: 0, succeeded: 0, failed: 0, error: outcome.reason };
  }
}

/** The wait for a slot is never cut short (a shutdown drains the run instead). */
const NEVER_ABORTED = new AbortController().signal;

export class EvaluationBatch {
  /** The scheduled workflow: DBOS calls it with the slot's time and the schedule's context. */
  @DBOS.workflow({ maxRecoveryAttempts: 3 })
  static async trigger(scheduledTime: Date, context: unknown): Promise<BatchRunOutput> {
    const s = current();
    const workflowId = DBOS.workflowID ?? 'unknown';
    const scheduledIso = new Date(scheduledTime).toISOString();
    const ctx = readSlotContext(context, workflowId);
    // The engine starts a slot's run a little early (more for a herd of slots due at once, see engine.ts): wait
    // for the slot itself. Not a durable sleep: a replay after a crash is past the slot and does not wait.
    // sleepUntil re-checks the clock: a Node timer may fire a millisecond before Date.now() reaches its time, and a
    // run must never start before its slot (seen once: actual_time 1 ms before scheduled_time).
    const slotMs = Date.parse(scheduledIso);
    if (slotMs > Date.now() && !isManualRun(ctx))
      await systemClock.sleepUntil(Math.min(slotMs, Date.now() + MAX_FIRE_LEAD_MS), NEVER_ABORTED);
    // The run starts its slot now. Taken before the step: a step first waits for a system-database connection to
    // look up its checkpoint, and a herd's runs (hundreds at one instant) queue there, which is not the slot's lag.
    const wokeAt = Date.now();
    const actualIso = await EvaluationBatch.recordActualStart(scheduledIso, ctx.schedule, wokeAt);
    const base = { workflow_id: workflowId, scheduled_time: scheduledIso, actual_time: actualIso };

    // From the decision to `triggered`, whatever throws (even recording the decision) releases the gate.
    let gate: Gate;
    try {
      gate = await EvaluationBatch.checkGate(workflowId, scheduledIso, actualIso, ctx);
      if (gate.run) {
        await DBOS.setEvent<BatchStatus>(BATCH_STATUS_EVENT, {
          ...base,
          status: 'triggered',
          processed: 0,
          succeeded: 0,
          failed: 0,
        });
      }
    } finally {
      await releaseGate(workflowId); // others deciding now see this run's `triggered`
    }
    if (!gate.run) {
      const status: BatchStatus = {
        ...base,
        status: 'skipped',
        processed: 0,
        succeeded: 0,
        failed: 0,
        message: gate.message,
      };
      await DBOS.setEvent(BATCH_STATUS_EVENT, status);
      await EvaluationBatch.recordOutcome(ctx.schedule, status, gate.reason);
      await EvaluationBatch.enforceFailurePolicy(ctx.schedule, status, gate.reason);
      return { status, skipped_reason: gate.reason };
    }

    // The payload is merged into the body; batch_size_limit defaults to BATCH_SIZE_LIMIT.
    const request: XyraRequest = {
      batch_size_limit: s.batchSizeLimit,
      ...gate.payload,
      workflow_id: workflowId,
      triggered_at: scheduledIso,
    };
    let attempt = 0;
    let record: AttemptRecord;
    let totalMs = 0;
    for (;;) {
      attempt += 1;
      record = await EvaluationBatch.callApi(request, attempt);
      totalMs += record.outcome.durationMs;
      if (record.outcome.kind !== 'retryable' || attempt >= s.maxAttempts) break;
      await DBOS.sleep(record.nextDelayMs);
    }

    const outcome = record.outcome;
    const final = finalStatusOf(outcome);
    if (outcome.kind === 'retryable') final.error = `${outcome.reason} (gave up after ${attempt} attempts)`;
    // Events and the output are stored and served (history, /api): an API message or error that echoes a secret
    // (a token, a URL password) is scrubbed before it is written.
    const status: BatchStatus = redactValue({ ...base, ...final });
    await DBOS.setEvent(BATCH_STATUS_EVENT, status);
    await EvaluationBatch.recordOutcome(ctx.schedule, status);
    await EvaluationBatch.enforceFailurePolicy(ctx.schedule, status);
    return {
      status,
      request,
      response: {
        status_code: outcome.statusCode,
        body_bytes: outcome.bodyBytes,
        duration_ms: outcome.durationMs,
        attempts: attempt,
        total_duration_ms: totalMs,
      },
    };
  }

  /**
   * Checkpointed, so a recovered run keeps its original start time: the instant the run woke for its slot, or,
   * when the execution fence held it (an outage), the instant the fence let it through.
   */
  @DBOS.step()
  static async recordActualStart(scheduledIso: string, scheduleName: string, wokeAt?: number): Promise<string> {
    const asked = Date.now();
    await passFence(); // every step first waits for a confirmed executor claim (runtime/executionFence.ts)
    const passed = Date.now();
    const now = new Date(passed - asked > FENCE_HELD_MS || wokeAt === undefined ? passed : wokeAt);
    recordScheduleLag(scheduleName, now.getTime() - Date.parse(scheduledIso));
    return now.toISOString();
  }

  /**
   * The schedule's row decides, as it is now: a slot of a spec version that is no longer current (or of a
   * deleted schedule) never runs, then pause, catch-up policy and the overlap policy. A run that may proceed
   * under overlap `skip` leaves here holding the gate, released once `triggered` is written.
   */
  @DBOS.step()
  static async checkGate(workflowId: string, scheduledIso: string, actualIso: string, ctx: SlotContext): Promise<Gate> {
    return fenced(() => EvaluationBatch.decide(workflowId, scheduledIso, actualIso, ctx));
  }

  private static async decide(
    workflowId: string,
    scheduledIso: string,
    actualIso: string,
    ctx: SlotContext,
  ): Promise<Gate> {
    const s = current();
    // A backfilled slot was asked for by an operator: like a manual run, it is never "missed" nor held by a pause.
    const manual = isManualRun(ctx) || ctx.backfill === true;
    const slot = new Date(scheduledIso);
    const row = await getScheduleRowSettled(s.appPool, ctx.schedule);
    if (!row)
      return { run: false, reason: 'superseded', message: `Schedule "${ctx.schedule}" no longer exists: slot not run` };
    if (!manual) {
      // The pause first: a pause is an edit too (it moves the version), and for a slot inside one "paused" is
      // the reason an operator looks for, whichever replica decides and however late it heard of the edit.
      const pause =
        row.status === 'PAUSED'
          ? { paused: true, message: 'Schedule paused: slot not run' }
          : await pauseCovering(s.appPool, row.name, slot);
      if (pause.paused) return { run: false, reason: 'paused', message: pause.message };
      if (ctx.version !== undefined && ctx.version !== row.version) {
        // Slots before the next version took effect still belong to this one (downtime caught up by the old spec).
        const until = await versionSupersededAt(s.appPool, row.name, ctx.version, new Date(row.created_at));
        // A slot the current spec has too is the current spec's slot (started early under the old one, just
        // before the edit: the engine starts runs ahead of their slot): it runs, with the current payload.
        const current = slot.getTime() >= Date.parse(row.effective_from) && new SpecSlots(row).isSlot(slot);
        if (!current && (until === null || slot.getTime() >= until.getTime())) {
          return {
            run: false,
            reason: 'superseded',
            message: `Slot of version ${ctx.version}; the schedule is at version ${row.version} since ${until?.toISOString() ?? 'its re-creation'}: not run`,
          };
        }
      }
    }
    const catchUp = decideCatchUp(
      row.catch_up,
      new CronSchedule(row.cron, row.timezone),
      slot,
      new Date(actualIso),
      manual,
      upSince,
    );
    if (!catchUp.run) return { run: false, reason: 'missed', message: catchUp.message };

    if (row.overlap !== 'allow_all') {
      const blocker = await enterGate(s.systemPool, row.name, workflowId, s.isExecutorAlive, () =>
        s.logger.warn({ workflowId }, 'overlap gate held too long: released without this run publishing `triggered`'),
      );
      if (blocker) {
        // buffer_one: wait for the run ahead, unless another run of this schedule already waits.
        const waited =
          row.overlap === 'buffer_one' &&
          (await waitAsBuffered(s.systemPool, row.name, workflowId, s.isExecutorAlive, () =>
            s.logger.warn(
              { workflowId },
              'overlap gate held too long: released without this run publishing `triggered`',
            ),
          ));
        if (!waited) {
          s.logger.info({ workflowId, blocker }, 'batch skipped: another run is still in progress');
          return { run: false, reason: 'in_progress', message: IN_PROGRESS_MESSAGE };
        }
      }
    }
    return { run: true, payload: row.payload };
  }

  /** One attempt against the Xyra Analytics API; never throws for HTTP trouble, it classifies it. */
  @DBOS.step()
  static async callApi(request: XyraRequest, attempt: number): Promise<AttemptRecord> {
    await passFence(); // never an API call while this replica's claim is unconfirmed
    const s = current();
    const outcome = await callEvaluationBatch(
      { baseUrl: s.apiUrl, token: s.apiToken, timeoutMs: s.timeoutMs, connectTimeoutMs: s.connectTimeoutMs },
      request,
    );
    const nextDelayMs =
      outcome.kind === 'retryable' ? backoffDelayMs(attempt, s.backoffBaseMs, s.backoffMaxMs, outcome.retryAfterMs) : 0;
    const log = {
      workflowId: request.workflow_id,
      attempt,
      kind: outcome.kind,
      statusCode: outcome.statusCode,
      ms: outcome.durationMs,
    };
    if (outcome.kind === 'retryable' || outcome.kind === 'fatal') {
      s.logger.warn({ ...log, reason: redact(outcome.reason), nextDelayMs }, 'Xyra API attempt did not succeed');
    } else {
      s.logger.debug(log, 'Xyra API attempt');
    }
    return { outcome, nextDelayMs };
  }

  /** BATCH_PAUSE_AFTER_FAILURES: a step, so the count and the pause happen once per run, replay or not. */
  @DBOS.step({ retriesAllowed: true, maxAttempts: 5, intervalSeconds: 1 })
  static async enforceFailurePolicy(
    scheduleName: string,
    status: BatchStatus,
    skippedBy?: Gate['reason'],
  ): Promise<void> {
    await fenced(() => applyFailurePolicy(scheduleName, status, skippedBy));
  }

  @DBOS.step()
  static async recordOutcome(scheduleName: string, status: BatchStatus, skippedBy?: Gate['reason']): Promise<void> {
    await passFence();
    recordBatchRun(scheduleName, status.status, new Date(status.scheduled_time), skippedBy);
    current().logger.info(
      {
        workflowId: status.workflow_id,
        schedule: scheduleName,
        status: status.status,
        processed: status.processed,
        succeeded: status.succeeded,
        failed: status.failed,
        scheduledTime: status.scheduled_time,
        actualTime: status.actual_time,
        message: status.message,
        // Ours (missed, in_progress, paused, …) when we skipped the run without asking the API; absent otherwise.
        skippedReason: skippedBy,
        error: status.error,
      },
      `batch ${status.status}`,
    );
  }
}
