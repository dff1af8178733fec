// What `xyra stats --json` prints and `/api/stats` answers: the window's figures plus, when the window reaches
// further back than HISTORY_RETENTION, the time before which runs were pruned. One definition for both.
import type pg from 'pg';
import type { Queryable } from '../evaluation/scheduleEvents.js';
import { prunedBefore } from './retention.js';
import { batchStats, type BatchStats } from './stats.js';

export type StatsReport = BatchStats & { pruned_before: string | null };

export async function statsReport(
  systemDb: pg.ClientBase,
  appDb: Queryable,
  windowMs: number,
  retentionMs: number,
): Promise<StatsReport> {
  const stats = await batchStats(systemDb, windowMs, new Date(), appDb);
  // A window longer than HISTORY_RETENTION reaches runs the cleanup has deleted: say so, never imply none ran.
  return { ...stats, pruned_before: prunedBefore(windowMs, retentionMs, new Date(stats.until)) };
}
