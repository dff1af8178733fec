// `xyra schedule next`: the coming slots, computed by the same SpecSlots.next the firing engine walks
// (src/evaluation/engine.ts), from the schedule's stored row: what is listed is what fires. Without
// `--schedule` that is the `evaluation-batch` row (which `schedule update` may have changed since start-up);
// only when there is no database or no such row yet does it list BATCH_CRON in BATCH_TIMEZONE, the spec the
// next start-up will create the row from.
import { UsageError, positiveInt, withDb, type CliContext } from '../cliCommand.js';
import { SpecSlots, type ScheduleSpec } from '../evaluation/scheduleSpec.js';
import { getScheduleRow, type ScheduleRow } from '../evaluation/scheduleStore.js';
import { DEFAULT_SCHEDULE } from '../evaluation/slotContext.js';
import { ScheduleNotFoundError } from '../errors.js';
import { resolveDatabasesForClient } from '../runtime/databases.js';

export interface ScheduleNextOptions {
  json?: boolean;
  count?: string;
  from?: string;
  /** A named schedule (its row must exist); without it, the evaluation-batch row, else BATCH_*. */
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

type SlotSpec = Pick<ScheduleSpec, 'cron' | 'timezone' | 'start_at' | 'end_at'>;

/** Connection refused, unknown host, no such database, or not migrated yet: nothing stored to list. */
function noDatabase(e: unknown): boolean {
  const { code } = (e ?? {}) as { code?: unknown };
  return ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', '3D000', '42P01'].includes(String(code));
}

/** The stored row of `name`, or why there is none to read (`null` row: the database has no such schedule). */
async function storedRow(ctx: CliContext, name: string): Promise<{ row: ScheduleRow | null } | { absent: string }> {
  let appDatabaseUrl: string;
  try {
    ({ appDatabaseUrl } = await resolveDatabasesForClient(ctx.config));
  } catch (e) {
    return { absent: e instanceof Error ? e.message : String(e) }; // no DATABASE_URL and no embedded server
  }
  try {
    return { row: await withDb(appDatabaseUrl, (app) => getScheduleRow(app, name)) };
  } catch (e) {
    if (noDatabase(e)) return { absent: 'no database reachable' };
    throw e;
  }
}

export async function scheduleNext(ctx: CliContext, options: ScheduleNextOptions): Promise<number> {
  const count = positiveInt('count', options.count, 5);
  if (count > 10_000) throw new UsageError('--count: at most 10000');
  const from = parseFromInstant(options.from);
  const name = options.schedule ?? DEFAULT_SCHEDULE;
  const stored = await storedRow(ctx, name);
  const row = 'row' in stored ? stored.row : null;
  if (!row && options.schedule !== undefined) {
    if ('absent' in stored) throw new Error(stored.absent);
    throw new ScheduleNotFoundError(name);
  }
  // No row: what the next start-up declares, the env's spec, read with the same rules.
  const spec: SlotSpec = row ?? {
    cron: ctx.config.batch.cron,
    timezone: ctx.config.batch.timezone,
    start_at: null,
    end_at: null,
  };
  const source = row
    ? `schedule "${name}"`
    : `BATCH_CRON (${'absent' in stored ? stored.absent : `no "${name}" row yet`})`;
  const { cron, timezone } = spec;
  const slots = new SpecSlots(spec).nextSlots(from, count);
  if (options.json) {
    ctx.out(JSON.stringify(slots.map((s) => s.toISOString())));
    return 0;
  }
  ctx.out(`next ${count} slot(s) of "${cron}" in ${timezone} after ${from.toISOString()}, from ${source}:`);
  for (const s of slots) ctx.out(`  ${s.toISOString()}  (${localText(s, timezone)})`);
  return 0;
}
