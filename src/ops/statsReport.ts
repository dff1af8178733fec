// What `xyra stats --json` prints and `/api/stats` answers: the window's figures plus, when the window reaches
// further back than HISTORY_RETENTION, the time before which runs were pruned. One definition for both.
import type pg from 'pg';
import type { Queryable } from '../evaluation/scheduleEvents.js';
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

/**
 * What `xyra stats` says when its window reaches further back than the retention; null when it does not. Here, not
 * in retention.ts: a stats command must not load the retention job (DBOS, the fence, the metrics SDK).
 */
export function prunedBefore(windowMs: number, retentionMs: number, now = new Date()): string | null {
  return windowMs > retentionMs ? new Date(now.getTime() - retentionMs).toISOString() : null;
}
