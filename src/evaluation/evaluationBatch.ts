// The evaluation batch trigger: one durable workflow run per cron slot.
//
// Every decision the run makes is taken inside a step, so a run recovered after a crash replays the
// recorded decisions (actual start time, catch-up and overlap verdicts, each API attempt) instead of
// making them again. Each API attempt is its own step and the backoff between attempts is a durable
// DBOS.sleep, so a crash mid-retry resumes at the next attempt with the same idempotency key.
import { DBOS } from '@dbos-inc/dbos-sdk';
import type pg from 'pg';
import type { CatchUpPolicy } from '../config.js';
import { redact, redactValue } from '../logger.js';
import type { Logger } from '../logger.js';
import { recordBatchRun, recordScheduleLag } from '../telemetry/metrics.js';
import { isBackfillContext } from './backfillContext.js';
import { decideCatchUp } from './catchUp.js';
import { CronSchedule } from './cron.js';
import { applyFailurePolicy } from './failurePolicy.js';
import { pauseCovering } from './pauseGate.js';
import { dbosSchedulerFiresAt } from '../runtime/dbosInternals.js';
import { enterGate, releaseGate, type ExecutorAliveCheck } from './overlapGuard.js';
import { BATCH_STATUS_EVENT, type BatchRunOutput, type BatchStatus } from './status.js';
import { backoffDelayMs, callEvaluationBatch, DEFAULT_SKIP_MESSAGE, type AttemptOutcome, type XyraRequest } from './xyraClient.js';

export const SCHEDULE_NAME = 'evaluation-batch';
/** The overlap guard speaks the API's own words for the same situation (its 409). */
export const IN_PROGRESS_MESSAGE = DEFAULT_SKIP_MESSAGE;

export interface EvaluationSettings {
  apiUrl: string;
  apiToken: string | undefined;
  cron: string;
  /** IANA zone the cron is read in (BATCH_TIMEZONE). */
  timeZone?: string;
  batchSizeLimit: number;
  catchUp: CatchUpPolicy;
  timeoutMs: number;
  connectTimeoutMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Whether a PENDING run's executor is alive (failover's view): runs of dead executors block nothing. */
  isExecutorAlive: ExecutorAliveCheck;
  /** A small pool on the DBOS system database, for the overlap guard's query. */
  systemPool: pg.Pool;
  /** A small pool on the app database (`schedule_events`: was this slot inside a pause?). */
  appPool?: pg.Pool;
  logger: Logger;
}

let settings: EvaluationSettings | undefined;
let schedule: CronSchedule | undefined;
/**
 * When this process started (before its module loading, which takes seconds on a loaded machine): slots
 * due before it were missed while no process ran.
 */
let upSince: Date | undefined;

/** Called once at start-up, before DBOS launches: workflows read their settings from here, never from
 * their inputs, so the API token is never stored in the system database. */
export function configureEvaluationBatch(s: EvaluationSettings): void {
  settings = s;
  schedule = new CronSchedule(s.cron, s.timeZone ?? 'UTC');
  upSince = new Date(performance.timeOrigin);
}

function current(): EvaluationSettings {
  if (!settings) throw new Error('EvaluationBatch used before configureEvaluationBatch()');
  return settings;
}

interface Gate {
  run: boolean;
  reason?: NonNullable<BatchRunOutput['skipped_reason']>;
  message?: string;
}

interface AttemptRecord {
  outcome: AttemptOutcome;
  /** Delay before the next attempt, decided in the step so a replay waits the same. */
  nextDelayMs: number;
}

function isManualRun(workflowId: string): boolean {
  return workflowId.startsWith(`sched-${SCHEDULE_NAME}-trigger-`);
}

function finalStatusOf(outcome: AttemptOutcome): Pick<BatchStatus, 'status' | 'processed' | 'succeeded' | 'failed' | 'message' | 'error'> {
  switch (outcome.kind) {
    case 'completed':
      return { status: 'completed', processed: outcome.processed, succeeded: outcome.succeeded, failed: outcome.failed };
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

export class EvaluationBatch {
  /** The scheduled workflow: DBOS calls it with the slot's time and the schedule's context. */
  @DBOS.workflow({ maxRecoveryAttempts: 3 })
  static async trigger(scheduledTime: Date, context: unknown): Promise<BatchRunOutput> {
    const s = current();
    const workflowId = DBOS.workflowID ?? 'unknown';
    const scheduledIso = new Date(scheduledTime).toISOString();
    // The precise firing starts a slot's run a few ms early (see firing.ts): wait for the slot itself. Not a
    // durable sleep: a replay after a crash is past the slot and does not wait.
    const early = Date.parse(scheduledIso) - Date.now();
    if (early > 0 && !isManualRun(workflowId)) await new Promise((r) => setTimeout(r, Math.min(early, 1_000)));
    const actualIso = await EvaluationBatch.recordActualStart(scheduledIso);
    const base = { workflow_id: workflowId, scheduled_time: scheduledIso, actual_time: actualIso };

    // From the decision to `triggered`, whatever throws (even recording the decision) releases the gate.
    let gate: Gate;
    try {
      gate = await EvaluationBatch.checkGate(workflowId, scheduledIso, actualIso, isBackfillContext(context));
      if (gate.run) {
        await DBOS.setEvent<BatchStatus>(BATCH_STATUS_EVENT, { ...base, status: 'triggered', processed: 0, succeeded: 0, failed: 0 });
      }
    } finally {
      await releaseGate(workflowId); // others deciding now see this run's `triggered`
    }
    if (!gate.run) {
      const status: BatchStatus = { ...base, status: 'skipped', processed: 0, succeeded: 0, failed: 0, message: gate.message };
      await DBOS.setEvent(BATCH_STATUS_EVENT, status);
      await EvaluationBatch.recordOutcome(status);
      await EvaluationBatch.enforceFailurePolicy(status, gate.reason);
      return { status, skipped_reason: gate.reason };
    }

    const request: XyraRequest = { workflow_id: workflowId, triggered_at: scheduledIso, batch_size_limit: s.batchSizeLimit };
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
    await EvaluationBatch.recordOutcome(status);
    await EvaluationBatch.enforceFailurePolicy(status);
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

  /** Checkpointed, so a recovered run keeps its original start time. */
  @DBOS.step()
  static async recordActualStart(scheduledIso: string): Promise<string> {
    const now = new Date();
    recordScheduleLag(now.getTime() - Date.parse(scheduledIso));
    return now.toISOString();
  }

  /**
   * Catch-up policy first (a missed slot is reported as missed even if another run is going on), then the
   * overlap guard. A run that may proceed leaves here holding the gate, released once `triggered` is written.
   */
  @DBOS.step()
  static async checkGate(workflowId: string, scheduledIso: string, actualIso: string, backfill = false): Promise<Gate> {
    const s = current();
    // A backfilled slot was asked for by an operator: like a manual run, it is never "missed" nor held by a pause.
    const manual = isManualRun(workflowId) || backfill;
    const slot = new Date(scheduledIso);
    // DBOS's matcher and ours disagree on daylight-saving days (a second autumn run of a fixed-time slot):
    // only slots of CronSchedule run.
    if (!manual && !schedule!.isSlot(slot) && dbosSchedulerFiresAt(s.cron, s.timeZone ?? 'UTC', slot)) {
      return { run: false, reason: 'not_a_slot', message: `Not a slot of "${s.cron}" in ${s.timeZone ?? 'UTC'} (cron(8) daylight-saving rules)` };
    }
    if (!manual && s.appPool) {
      const pause = await pauseCovering(s.systemPool, s.appPool, SCHEDULE_NAME, slot);
      if (pause.paused) return { run: false, reason: 'paused', message: pause.message };
    }
    const catchUp = decideCatchUp(s.catchUp, schedule!, slot, new Date(actualIso), manual, upSince);
    if (!catchUp.run) return { run: false, reason: 'missed', message: catchUp.message };

    const blocker = await enterGate(s.systemPool, workflowId, s.isExecutorAlive, () =>
      s.logger.warn({ workflowId }, 'overlap gate held too long: released without this run publishing `triggered`'),
    );
    if (blocker) {
      s.logger.info({ workflowId, blocker }, 'batch skipped: another run is still in progress');
      return { run: false, reason: 'in_progress', message: IN_PROGRESS_MESSAGE };
    }
    return { run: true };
  }

  /** One attempt against the Xyra Analytics API; never throws for HTTP trouble, it classifies it. */
  @DBOS.step()
  static async callApi(request: XyraRequest, attempt: number): Promise<AttemptRecord> {
    const s = current();
    const outcome = await callEvaluationBatch(
      { baseUrl: s.apiUrl, token: s.apiToken, timeoutMs: s.timeoutMs, connectTimeoutMs: s.connectTimeoutMs },
      request,
    );
    const nextDelayMs =
      outcome.kind === 'retryable' ? backoffDelayMs(attempt, s.backoffBaseMs, s.backoffMaxMs, outcome.retryAfterMs) : 0;
    const log = { workflowId: request.workflow_id, attempt, kind: outcome.kind, statusCode: outcome.statusCode, ms: outcome.durationMs };
    if (outcome.kind === 'retryable' || outcome.kind === 'fatal') {
      s.logger.warn({ ...log, reason: redact(outcome.reason), nextDelayMs }, 'Xyra API attempt did not succeed');
    } else {
      s.logger.debug(log, 'Xyra API attempt');
    }
    return { outcome, nextDelayMs };
  }

  /** BATCH_PAUSE_AFTER_FAILURES: a step, so the count and the pause happen once per run, replay or not. */
  @DBOS.step({ retriesAllowed: true, maxAttempts: 5, intervalSeconds: 1 })
  static async enforceFailurePolicy(status: BatchStatus, skippedBy?: Gate['reason']): Promise<void> {
    await applyFailurePolicy(status, skippedBy);
  }

  @DBOS.step()
  static async recordOutcome(status: BatchStatus): Promise<void> {
    recordBatchRun(status.status);
    current().logger.info(
      {
        workflowId: status.workflow_id,
        status: status.status,
        processed: status.processed,
        succeeded: status.succeeded,
        failed: status.failed,
        scheduledTime: status.scheduled_time,
        actualTime: status.actual_time,
        message: status.message,
        error: status.error,
      },
      `batch ${status.status}`,
    );
  }
}
