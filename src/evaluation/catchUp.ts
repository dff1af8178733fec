// The missed-slot policy. After downtime the engine (engine.ts) starts a run for every missed slot inside the
// catch-up window; each slot's run then asks here whether it should still call the API, so every slot gets an
// outcome on record.
import type { CronSchedule } from './cron.js';
import type { CatchUpPolicy } from '../config.js';

export interface CatchUpDecision {
  run: boolean;
  message?: string;
}

/**
 * - `latest`: a slot whose successor slot was already due when it started is skipped: only the newest
 *   missed slot runs. With `upSince` (when this process started), the successor must itself have been
 *   missed (due before the process was up): a slow start-up never makes the newest missed slot lose to a
 *   slot that came due while the service was starting.
 * - `none`: a slot that starts more than half an interval late was missed and is skipped.
 * - `all`: every slot runs.
 * Manual triggers (`xyra trigger`) are never "missed".
 */
export function decideCatchUp(
  policy: CatchUpPolicy,
  cron: CronSchedule,
  scheduledTime: Date,
  actualTime: Date,
  manual: boolean,
  upSince?: Date,
): CatchUpDecision {
  if (policy === 'all' || manual) return { run: true };
  const next = cron.next(scheduledTime);
  if (policy === 'latest') {
    const successorMissed = upSince === undefined || next.getTime() < upSince.getTime();
    if (next.getTime() <= actualTime.getTime() && successorMissed) {
      return {
        run: false,
        message: `Missed slot: superseded by the slot at ${next.toISOString()} (catch-up policy "latest")`,
      };
    }
    return { run: true };
  }
  const interval = next.getTime() - scheduledTime.getTime();
  if (actualTime.getTime() - scheduledTime.getTime() > interval / 2) {
    return {
      run: false,
      message: `Missed slot: started ${actualTime.getTime() - scheduledTime.getTime()} ms late (catch-up policy "none")`,
    };
  }
  return { run: true };
}
