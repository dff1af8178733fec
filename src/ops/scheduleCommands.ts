// `xyra schedule create|update|delete|list|apply` (schedules as data) and the `--schedule NAME` option of the
// other schedule commands. Exit codes: 0 ok; 1 not found, already exists or conflict; 2 invalid argument
// (UsageError naming the option).
import fs from 'node:fs/promises';
import { UsageError, withDb, type CliContext } from '../cliCommand.js';
import {
  parseSchedulePatch,
  parseScheduleSpec,
  scheduleDefaults,
  ScheduleValidationError,
  SCHEDULE_NAME_PATTERN,
} from '../evaluation/scheduleSpec.js';
import { createSchedule, deleteSchedule, updateSchedule, UnknownScheduleError } from '../evaluation/scheduleStore.js';
import { DEFAULT_SCHEDULE } from '../evaluation/slotContext.js';
import { ScheduleNotFoundError } from '../errors.js';
import { resolveDatabasesForClient } from '../runtime/databases.js';
import { executeApply, parseApplyFile, planApply, planSummary, type ApplySummary } from './scheduleApply.js';
import { transactionSource } from './scheduleControl.js';
import { listScheduleViews, scheduleView, type ScheduleView } from './scheduleViews.js';
import { getScheduleRow } from '../evaluation/scheduleStore.js';

/** The options of create/update, as parseArgs declares them. */
export const SPEC_OPTIONS = {
  cron: { type: 'string' },
  timezone: { type: 'string' },
  payload: { type: 'string' },
  'catch-up': { type: 'string' },
  'catch-up-window': { type: 'string' },
  overlap: { type: 'string' },
  'pause-after-failures': { type: 'string' },
  'start-at': { type: 'string' },
  'end-at': { type: 'string' },
  note: { type: 'string' },
} as const;

/** A field name as the CLI option that sets it (`catch_up_window` → `--catch-up-window`). */
function optionOf(field: string): string {
  return field.startsWith('schedules[') || field === 'file' ? field : `--${field.replace(/_/g, '-')}`;
}

/** Turns a ScheduleValidationError into a UsageError naming the option (exit 2). */
export async function asUsage<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ScheduleValidationError)
      throw new UsageError(`${optionOf(e.field)}: ${e.message.slice(e.field.length + 2)}`);
    if (e instanceof UnknownScheduleError) throw new ScheduleNotFoundError(e.scheduleName);
    throw e;
  }
}

/** Option values → the raw object the spec schema reads (unset options are left out). */
function rawSpec(values: Record<string, string | boolean | undefined>): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  const set = (field: string, option: string, convert: (v: string) => unknown = (v) => v) => {
    const v = values[option];
    if (typeof v === 'string') raw[field] = convert(v);
  };
  const nullable = (v: string) => (v === '' || v === 'none' ? null : v);
  set('cron', 'cron');
  set('timezone', 'timezone');
  set('payload', 'payload', (v) => {
    try {
      return JSON.parse(v) as unknown;
    } catch {
      throw new ScheduleValidationError('payload', 'not valid JSON');
    }
  });
  set('catch_up', 'catch-up');
  set('catch_up_window', 'catch-up-window');
  set('overlap', 'overlap');
  set('pause_after_failures', 'pause-after-failures', (v) => (/^\d+$/.test(v) ? Number(v) : v));
  set('start_at', 'start-at', nullable);
  set('end_at', 'end-at', nullable);
  set('note', 'note', nullable);
  return raw;
}

export function checkName(name: string | undefined, option = 'NAME'): string {
  if (name === undefined) throw new UsageError(`${option} is required`);
  if (!SCHEDULE_NAME_PATTERN.test(name))
    throw new UsageError(`${option}: "${name}" must match ^[a-z0-9][a-z0-9-]{0,62}$`);
  return name;
}

export function viewLines(v: ScheduleView): string[] {
  return [
    `schedule ${v.name}: ${v.status} (version ${v.version}, managed by ${v.managed_by})`,
    `  cron          ${v.cron}  (${v.timezone})`,
    `  payload       ${JSON.stringify(v.payload)}`,
    `  overlap       ${v.overlap}; catch-up ${v.catch_up} within ${v.catch_up_window}; pause after ${v.pause_after_failures || 'never'} failures`,
    ...(v.start_at || v.end_at ? [`  active        ${v.start_at ?? '-'} → ${v.end_at ?? '-'}`] : []),
    ...(v.note ? [`  note          ${v.note}`] : []),
    ...(v.paused_reason ? [`  paused        ${v.paused_reason}`] : []),
    `  next slots    ${v.next_slots.join(', ') || '-'}`,
    `  last run      ${v.last_run ? `${v.last_run.workflow_id}: ${v.last_run.status}` : '-'}`,
  ];
}

type Values = Record<string, string | boolean | undefined>;

async function showOne(ctx: CliContext, name: string, asJson: boolean): Promise<void> {
  const { systemDatabaseUrl, appDatabaseUrl } = await resolveDatabasesForClient(ctx.config);
  const view = await withDb(systemDatabaseUrl, (sys) =>
    withDb(appDatabaseUrl, async (app) => {
      const row = await getScheduleRow(app, name);
      if (!row) throw new ScheduleNotFoundError(name);
      return scheduleView(row, sys, app);
    }),
  );
  if (asJson) ctx.out(JSON.stringify(view, null, 2));
  else viewLines(view).forEach((l) => ctx.out(l));
}

/** create / update / delete / list / apply. */
export async function runDataAction(
  action: string,
  positionals: string[],
  values: Values,
  ctx: CliContext,
): Promise<number> {
  const asJson = values.json === true;
  if (action === 'list') {
    if (positionals.length !== 1) throw new UsageError('"schedule list" takes no NAME');
    const { systemDatabaseUrl, appDatabaseUrl } = await resolveDatabasesForClient(ctx.config);
    const views = await withDb(systemDatabaseUrl, (sys) =>
      withDb(appDatabaseUrl, (app) => listScheduleViews(sys, app)),
    );
    if (asJson) ctx.out(JSON.stringify(views, null, 2));
    else if (views.length === 0) ctx.out('no schedules');
    else for (const v of views) viewLines(v).forEach((l) => ctx.out(l));
    return 0;
  }
  if (action === 'apply') {
    const file = positionals[1];
    if (file === undefined || positionals.length !== 2)
      throw new UsageError('FILE is required: xyra schedule apply FILE');
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      throw new UsageError(`FILE: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const specs = await asUsage(() => parseApplyFile(text, scheduleDefaults(ctx.config)));
    const { appDatabaseUrl } = await resolveDatabasesForClient(ctx.config);
    const summary: ApplySummary = await withDb(appDatabaseUrl, async (app) => {
      const plan = await planApply(app, specs, values.prune === true);
      return values['dry-run'] === true ? planSummary(plan) : executeApply(transactionSource(app), plan);
    });
    if (asJson) ctx.out(JSON.stringify(summary, null, 2));
    else {
      const verb = summary.dry_run ? 'would ' : '';
      for (const n of summary.created) ctx.out(`${verb}create ${n}`);
      for (const n of summary.updated) ctx.out(`${verb}update ${n}`);
      for (const n of summary.deleted) ctx.out(`${verb}delete ${n}`);
      ctx.out(
        `${summary.created.length} created, ${summary.updated.length} updated, ${summary.deleted.length} deleted, ${summary.unchanged.length} unchanged${summary.dry_run ? ' (dry run: nothing changed)' : ''}`,
      );
    }
    return 0;
  }
  const name = checkName(positionals[1]);
  if (positionals.length !== 2) throw new UsageError(`"schedule ${action}" takes one NAME`);
  const { appDatabaseUrl } = await resolveDatabasesForClient(ctx.config);
  if (action === 'create') {
    if (values.cron === undefined) throw new UsageError('--cron is required');
    const spec = await asUsage(() => parseScheduleSpec({ name, ...rawSpec(values) }, scheduleDefaults(ctx.config)));
    await withDb(appDatabaseUrl, (app) => createSchedule(transactionSource(app), spec, 'cli'));
    await showOne(ctx, name, asJson);
    return 0;
  }
  if (action === 'update') {
    const patch = await asUsage(() => parseSchedulePatch(rawSpec(values)));
    if (Object.keys(patch).length === 0)
      throw new UsageError('nothing to change: give at least one option (e.g. --cron)');
    const result = await asUsage(() =>
      withDb(appDatabaseUrl, (app) => updateSchedule(transactionSource(app), name, patch, 'cli')),
    );
    if (!result.changed) ctx.logger.info('the schedule already has these settings: nothing changed');
    await showOne(ctx, name, asJson);
    return 0;
  }
  if (action === 'delete') {
    await asUsage(() => withDb(appDatabaseUrl, (app) => deleteSchedule(transactionSource(app), name, 'cli')));
    if (asJson) ctx.out(JSON.stringify({ deleted: name }));
    else ctx.out(`deleted ${name} (its runs and events stay in the history)`);
    return 0;
  }
  throw new UsageError(`unknown action "${action}"`);
}

/** `--schedule NAME` (default evaluation-batch). */
export function scheduleOption(value: string | undefined): string {
  return value === undefined ? DEFAULT_SCHEDULE : checkName(value, '--schedule');
}
