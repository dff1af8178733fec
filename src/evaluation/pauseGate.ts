// "Pause means pause": a slot that falls inside a pause never calls the API, under any catch-up policy.
// A replica's engine hears of a pause by NOTIFY (milliseconds, not zero), and a run can be started before a
// pause but reach its gate during it; so every run asks here (the `schedules` row) before calling the API.
import type { Queryable } from '../runtime/databases.js';

export interface PauseVerdict {
  paused: boolean;
  message?: string;
}

/**
 * Paused when the schedule is paused right now, or when the slot lies in a recorded pause (a `paused` event
 * at or before the slot with no `resumed` event between them): a slot of a pause that is already over
 * (enqueued late by DBOS, or backfilled) stays skipped.
 */
export async function pauseCovering(app: Queryable, scheduleName: string, slot: Date): Promise<PauseVerdict> {
  const { rows: current } = await app.query(`select status from schedules where name = $1`, [scheduleName]);
  if ((current[0] as { status: string } | undefined)?.status === 'PAUSED')
    return { paused: true, message: 'Schedule paused: slot not run' };
  const { rows } = await app.query(
    `select p.at from schedule_events p
      where p.schedule_name = $1 and p.kind = 'paused' and p.at <= $2
        and not exists (select 1 from schedule_events r
                         where r.schedule_name = $1 and r.kind = 'resumed' and r.at > p.at and r.at <= $2)
      order by p.at desc limit 1`,
    [scheduleName, slot],
  );
  const pausedAt = (rows[0] as { at: Date } | undefined)?.at;
  if (!pausedAt) return { paused: false };
  return { paused: true, message: `Slot fell in a pause (paused at ${pausedAt.toISOString()}): not run` };
}
