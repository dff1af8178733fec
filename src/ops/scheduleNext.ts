// `xyra schedule next`: the coming slots, computed by the same CronSchedule.next the firing engine walks
// (src/evaluation/slotFiring.ts), from the service's own configuration. Needs no database.
import { UsageError, positiveInt, withDb, type CliContext } from '../cliCommand.js';
import { CronSchedule } from '../evaluation/cron.js';
import { SpecSlots } from '../evaluation/scheduleSpec.js';
import { getScheduleRow } from '../evaluation/scheduleStore.js';
import { ScheduleNotFoundError } from '../errors.js';
import { resolveDatabasesForClient } from '../runtime/databases.js';

export interface ScheduleNextOptions {
  json?: boolean;
  count?: string;
  from?: string;
  /** A named schedule: its row's spec (read from the app database); without it, BATCH_* (no database needed). */
  schedule?: string;
}

/** Parses `--from`: an ISO-8601 instant with a zone designator (a bare local time would be ambiguous). */
export function parseFromInstant(value: string | undefined): Date {
  if (value === undefined) return new Date();
  const ok = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(value);
  const at = new Date(value);
  if (!ok || Number.isNaN(at.getTime())) {
    throw new UsageError(
      `--from: expected an ISO-8601 instant with a zone, e.g. 2026-03-08T06:00:00Z (got "${value}")`,
    );
  }
  return at;
}

function localText(at: Date, timeZone: string): string {
  return new Intl.DateTimeFormat('sv-SE', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    timeZoneName: 'short',
  }).format(at);
}

export async function scheduleNext(ctx: CliContext, options: ScheduleNextOptions): Promise<number> {
  const count = positiveInt('count', options.count, 5);
  if (count > 10_000) throw new UsageError('--count: at most 10000');
  const from = parseFromInstant(options.from);
  let { cron, timezone } = ctx.config.batch;
  let slots: Date[];
  if (options.schedule !== undefined) {
    const name = options.schedule;
    const { appDatabaseUrl } = await resolveDatabasesForClient(ctx.config);
    const row = await withDb(appDatabaseUrl, (app) => getScheduleRow(app, name));
    if (!row) throw new ScheduleNotFoundError(name);
    ({ cron, timezone } = row);
    slots = new SpecSlots(row).nextSlots(from, count);
  } else {
    slots = new CronSchedule(cron, timezone).nextSlots(from, count);
  }
  if (options.json) {
    ctx.out(JSON.stringify(slots.map((s) => s.toISOString())));
    return 0;
  }
  ctx.out(`next ${count} slot(s) of "${cron}" in ${timezone} after ${from.toISOString()}:`);
  for (const s of slots) ctx.out(`  ${s.toISOString()}  (${localText(s, timezone)})`);
  return 0;
}
