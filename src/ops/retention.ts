// History retention: on its own DBOS schedule, delete finished workflows (batch runs, chunk workflows, this
// job's own runs) that completed more than HISTORY_RETENTION ago from the DBOS system database, in bounded
// batches. The app tables (tasks, errors, schedule_events) are never touched: they are the record of results.
// The same run drops the staging tables of ingestions idle for as long (pipeline/stagingExpiry.ts): the records of
// an ingestion whose chunks failed and that nobody re-ran.
import { DBOS, type ScheduledWorkflowFn } from '@dbos-inc/dbos-sdk';
import type pg from 'pg';
import type { Logger } from '../logger.js';
import { deleteFinishedWorkflows } from '../runtime/dbosInternals.js';
import { fenced } from '../runtime/executionFence.js';
import { expireStaleStaging } from '../pipeline/stagingExpiry.js';

export const RETENTION_SCHEDULE = 'history-retention';
/** Rows per delete statement: one short transaction each, so no long lock on DBOS's tables. */
export const RETENTION_BATCH_SIZE = 500;
/** Batches per run: a run stays short; whatever is left waits for the next run. */
const MAX_BATCHES_PER_RUN = 200;

/** Periods (s) a cron can express evenly, ascending: */
const CRON_PERIODS_S = [
  1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800, 3600,
];

/**
 * The cleanup's cron: every min(1 h, retention ÷ 4), rounded down to a period a 6-field cron fires evenly
 * (so the schedule never runs less often than asked), at least every second.
 */
export function retentionCron(retentionMs: number): string {
  const wantedS = Math.min(3600, retentionMs / 4 / 1000);
  const periodS = [...CRON_PERIODS_S].reverse().find((p) => p <= wantedS) ?? 1;
  if (periodS < 60) return `*/${periodS} * * * * *`;
  if (periodS < 3600) return `0 */${periodS / 60} * * * *`;
  return '0 0 * * * *';
}

interface RetentionSettings {
  systemPool: pg.Pool;
  appPool: pg.Pool;
  retentionMs: number;
  logger: Logger;
}
let settings: RetentionSettings | undefined;

export function configureRetention(s: RetentionSettings): void {
  settings = s;
}

function configured(): RetentionSettings {
  if (!settings) throw new Error('history retention is not configured (configureRetention not called)');
  return settings;
}

export interface RetentionRunOutput {
  cutoff: string;
  deleted: number;
  /** Ingestions whose staging table was dropped. */
  stagingExpired: number;
}

export class HistoryRetention {
  /** Scheduled: deletes what finished before scheduledTime − retention (a recovered run keeps its cutoff). */
  @DBOS.workflow()
  static async prune(scheduledTime: Date, _context: unknown): Promise<RetentionRunOutput> {
    const cutoff = new Date(scheduledTime.getTime() - configured().retentionMs);
    let deleted = 0;
    for (let i = 0; i < MAX_BATCHES_PER_RUN; i++) {
      const n = await HistoryRetention.deleteBatch(cutoff.toISOString());
      deleted += n;
      if (n < RETENTION_BATCH_SIZE) break;
    }
    if (deleted > 0) configured().logger.info({ deleted, cutoff: cutoff.toISOString() }, 'history pruned');
    const expired = await HistoryRetention.expireStaging(cutoff.toISOString());
    if (expired.length > 0)
      configured().logger.info(
        { ingestions: expired, cutoff: cutoff.toISOString() },
        'staging tables of idle ingestions dropped',
      );
    return { cutoff: cutoff.toISOString(), deleted, stagingExpired: expired.length };
  }

  /** Idempotent: a retried batch deletes what is still there. */
  @DBOS.step()
  static async deleteBatch(cutoffIso: string): Promise<number> {
    // Every step first waits for a confirmed executor claim, and waits out a database outage (executionFence.ts).
    return fenced(async () => {
      const client = await configured().systemPool.connect();
      try {
        return await deleteFinishedWorkflows(client, new Date(cutoffIso), RETENTION_BATCH_SIZE);
      } finally {
        client.release();
      }
    });
  }

  /** Idempotent: a retried step drops what is still there. */
  @DBOS.step()
  static async expireStaging(cutoffIso: string): Promise<string[]> {
    return fenced(() => expireStaleStaging(configured().appPool, configured().systemPool, new Date(cutoffIso)));
  }
}

/** After launch: (re)apply the cleanup's schedule for the configured retention. */
export async function applyRetentionSchedule(retentionMs: number): Promise<void> {
  await DBOS.applySchedules([
    {
      scheduleName: RETENTION_SCHEDULE,
      // Our workflow returns its summary (stored as the output); the SDK types scheduled functions as void.
      workflowFn: HistoryRetention.prune as unknown as ScheduledWorkflowFn,
      schedule: retentionCron(retentionMs),
      // A missed cleanup needs no catch-up: the next one deletes everything due.
      automaticBackfill: false,
    },
  ]);
}
