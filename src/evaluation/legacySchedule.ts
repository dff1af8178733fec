// Upgrade from the version before schedules were data, where DBOS's scheduler fired `evaluation-batch` from its
// own schedule row. On the first start of our engine on such a database the `evaluation-batch` row is created
// from that DBOS row (its cron and zone: the spec the downtime belongs to), with `fired_through` at DBOS's last
// fired slot, so the start-up catch-up runs the slots missed across the upgrade under the catch-up window
// instead of losing them; a pause carries over. Then DBOS's row is deleted, before DBOS launches, so its
// scheduler never fires (nor backfills) a slot our rules do not have. A changed BATCH_* is reconciled after the
// catch-up like any other edit (envSchedule.ts).
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Queryable } from '../runtime/databases.js';
import { deleteDbosSchedule, readDbosSchedule, type DbosScheduleRow } from '../runtime/dbosInternals.js';
import { declaredEnvSchedule } from './envSchedule.js';
import { parseScheduleSpec, ScheduleValidationError, type ScheduleSpec } from './scheduleSpec.js';
import {
  createSchedule,
  getScheduleRow,
  pauseScheduleRow,
  ScheduleExistsError,
  type ClientSource,
} from './scheduleStore.js';
import { DEFAULT_SCHEDULE } from './slotContext.js';

export type TakeOverOutcome = 'adopted' | 'removed' | 'none';

/** The DBOS schedule's spec read by our rules; BATCH_* when our rules refuse its cron or zone. */
function adoptedSpec(legacy: DbosScheduleRow, config: Config): ScheduleSpec {
  try {
    return parseScheduleSpec(
      { name: DEFAULT_SCHEDULE, cron: legacy.cron, timezone: legacy.timezone ?? config.batch.timezone },
      {
        timezone: config.batch.timezone,
        catchUp: config.batch.catchUp,
        catchUpWindow: config.batch.catchUpWindow,
        pauseAfterFailures: config.batch.pauseAfterFailures,
      },
    );
  } catch (e) {
    if (e instanceof ScheduleValidationError) return declaredEnvSchedule(config);
    throw e;
  }
}

/**
 * Run at start-up after our migrations and before DBOS launches (under the start-up lock). `adopted`: the
 * `evaluation-batch` row was created from DBOS's; `removed`: DBOS's row was left over and deleted; `none`.
 */
export async function takeOverDbosSchedule(
  systemDb: Queryable,
  appPool: ClientSource & Queryable,
  config: Config,
  logger: Logger,
): Promise<TakeOverOutcome> {
  let legacy: DbosScheduleRow | null;
  try {
    legacy = await readDbosSchedule(systemDb, DEFAULT_SCHEDULE);
  } catch (e) {
    if ((e as { code?: unknown }).code === '3D000') return 'none'; // a first start: DBOS creates it at launch
    throw e;
  }
  if (!legacy) return 'none';
  let adopted = false;
  if (!(await getScheduleRow(appPool, DEFAULT_SCHEDULE))) {
    const spec = adoptedSpec(legacy, config);
    try {
      // Never-fired: from now, as a new schedule. A last fired slot in the future (a clock ahead) is no mark either.
      const mark = legacy.lastFiredAt && legacy.lastFiredAt.getTime() <= Date.now() ? legacy.lastFiredAt : undefined;
      await createSchedule(appPool, spec, 'env', mark);
      adopted = true;
      logger.info(
        { schedule: DEFAULT_SCHEDULE, cron: spec.cron, timezone: spec.timezone, firedThrough: mark?.toISOString() },
        "schedule taken over from DBOS's scheduler: slots after its last fired one are caught up",
      );
      if (legacy.status === 'PAUSED')
        await pauseScheduleRow(appPool, DEFAULT_SCHEDULE, {
          note: "paused before the upgrade (DBOS's schedule was paused)",
          by: 'upgrade',
        });
    } catch (e) {
      if (!(e instanceof ScheduleExistsError)) throw e; // created meanwhile: that one stands
    }
  }
  // Deleted only once our row holds what it knew (a crash in between finds the row and just deletes).
  await deleteDbosSchedule(systemDb, DEFAULT_SCHEDULE);
  return adopted ? 'adopted' : 'removed';
}
