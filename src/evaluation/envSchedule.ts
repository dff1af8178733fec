// The `evaluation-batch` schedule is declared by the BATCH_* variables and reconciled at start-up
// (`managed_by: env`). A runtime change to it (CLI, API, apply) lasts until the next start-up that declares
// something different: we compare the declaration with the last one on record (the latest change made by
// `env`), not with the row, so an operator's edit survives restarts that declare the same as before.
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { parseScheduleSpec, type ScheduleSpec } from './scheduleSpec.js';
import {
  createSchedule,
  getScheduleRow,
  updateSchedule,
  ScheduleExistsError,
  type ClientSource,
} from './scheduleStore.js';
import type { Queryable } from '../runtime/databases.js';
import { DEFAULT_SCHEDULE } from './slotContext.js';

/** The fields BATCH_* declare (the rest — payload, overlap, note, start/end — belong to the operator). */
const DECLARED = ['cron', 'timezone', 'catch_up', 'catch_up_window', 'pause_after_failures'] as const;

export function declaredEnvSchedule(config: Config): ScheduleSpec {
  return parseScheduleSpec(
    { name: DEFAULT_SCHEDULE, cron: config.batch.cron },
    {
      timezone: config.batch.timezone,
      catchUp: config.batch.catchUp,
      catchUpWindow: config.batch.catchUpWindow,
      pauseAfterFailures: config.batch.pauseAfterFailures,
    },
  );
}

async function lastDeclaration(db: Queryable): Promise<Record<string, unknown> | null> {
  const { rows } = await db.query(
    `select details -> 'after' as after from schedule_events
      where schedule_name = $1 and kind in ('created', 'updated') and details ->> 'by' = 'env'
      order by id desc limit 1`,
    [DEFAULT_SCHEDULE],
  );
  return (rows[0] as { after: Record<string, unknown> | null } | undefined)?.after ?? null;
}

export type ReconcileOutcome = 'created' | 'updated' | 'unchanged';

/** Creates or edits `evaluation-batch` to match BATCH_*; an edit like any other (version, audit row, NOTIFY). */
export async function reconcileEnvSchedule(
  pool: ClientSource & Queryable,
  config: Config,
  logger: Logger,
  caughtUpTo?: Date,
): Promise<ReconcileOutcome> {
  const declared = declaredEnvSchedule(config);
  const row = await getScheduleRow(pool, DEFAULT_SCHEDULE);
  if (!row) {
    try {
      await createSchedule(pool, declared, 'env');
      logger.info({ schedule: DEFAULT_SCHEDULE, cron: declared.cron }, 'schedule created from BATCH_*');
      return 'created';
    } catch (e) {
      if (!(e instanceof ScheduleExistsError)) throw e; // another replica starting at once created it
      return 'unchanged';
    }
  }
  const last = await lastDeclaration(pool);
  const same = last !== null && DECLARED.every((f) => JSON.stringify(last[f]) === JSON.stringify(declared[f]));
  if (same) return 'unchanged';
  const patch = Object.fromEntries(DECLARED.map((f) => [f, declared[f]]));
  // From the instant the old spec was caught up to: no slot of either spec falls between them.
  const result = await updateSchedule(pool, DEFAULT_SCHEDULE, patch, 'env', caughtUpTo);
  if (result.changed)
    logger.info(
      { schedule: DEFAULT_SCHEDULE, cron: declared.cron, version: result.schedule?.version },
      'schedule edited from BATCH_*',
    );
  return result.changed ? 'updated' : 'unchanged';
}
