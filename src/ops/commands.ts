// Operator commands: history, stats, errors, trigger, schedule. Diagnostics go to stderr (ctx.logger);
// stdout carries only the table or, with --json, one JSON document.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { positiveInt, UsageError, type CliCommand, type CliContext } from '../cliCommand.js';
import { resolveDatabasesForClient } from '../runtime/databases.js';
import { withDbosClient } from '../runtime/dbosClient.js';
import { errorText, latestErrors } from './errorsLog.js';
import { formatClock, formatMs, formatRate, formatTime, oneLine, renderTable } from './format.js';
import { listBatchRuns, type BatchRun } from './history.js';
import { pauseSchedule, resumeSchedule, scheduleState, triggerNow, waitForOutcome, type ScheduleState } from './scheduleControl.js';
import { scheduleNext } from './scheduleNext.js';
import { parseDuration } from '../config.js';
import { batchStats, type BatchStats } from './stats.js';

async function withDb<T>(url: string, fn: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ connectionString: url, application_name: 'xyra-cli' });
  await db.connect();
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}

const json = (ctx: CliContext, value: unknown) => ctx.out(JSON.stringify(value, null, 2));

function historyTable(runs: BatchRun[]): string[] {
  return renderTable(
    ['SLOT', 'STARTED', 'DELAY', 'DURATION', 'STATUS', 'P/S/F', 'ATT', 'MESSAGE / ERROR'],
    runs.map((r) => [
      formatTime(r.scheduled_time) + (r.manual ? ' (manual)' : ''),
      formatClock(r.actual_time),
      formatMs(r.delay_ms),
      formatMs(r.duration_ms),
      r.status,
      `${r.processed}/${r.succeeded}/${r.failed}`,
      String(r.attempts),
      oneLine(r.error ?? r.message ?? (r.skipped_reason ? `skipped: ${r.skipped_reason}` : '')),
    ]),
  );
}

function statsLines(s: BatchStats): string[] {
  const pct = (p: BatchStats['delay_ms']) => `p50 ${formatMs(p.p50)}  p95 ${formatMs(p.p95)}  max ${formatMs(p.max)}`;
  const statuses = Object.entries(s.by_status).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  return [
    `batch runs ${formatTime(s.since)} → ${formatTime(s.until)}`,
    `  runs              ${s.runs} (${s.manual_runs} manual): ${statuses}`,
    `  success rate      ${formatRate(s.success_rate)}  (completed ÷ completed+failed)`,
    `  items             processed ${s.items.processed}, succeeded ${s.items.succeeded}, failed ${s.items.failed}`,
    `  duration          ${pct(s.duration_ms)}`,
    `  delay             ${pct(s.delay_ms)}  (slot → actual start)`,
    `  retries           ${s.retries.runs_with_retries} of ${s.retries.api_runs} API runs retried (${formatRate(s.retries.retry_rate)}), ${s.retries.total_retries} retries`,
    `  missed slots      ${s.missed_slots} skipped by catch-up, ${s.slots_without_run ?? '?'} with no run`,
    `  in-progress skips ${s.in_progress_skips}`,
    `  workflow errors   ${s.workflow_errors}`,
  ];
}

function scheduleLines(s: ScheduleState): string[] {
  return [
    `schedule ${s.name}: ${s.status}`,
    `  cron          ${s.cron}`,
    `  last fired    ${s.last_fired_at ?? '-'}`,
    `  next slot     ${s.next_slot ?? '-'}`,
    `  queue         ${s.queue ?? '(internal)'}`,
    `  backfill      ${s.automatic_backfill ? 'on' : 'off'}`,
  ];
}

export const opsCommands: Record<string, CliCommand> = {
  history: {
    summary: 'batch runs, newest first (slot, start, delay, duration, status, counts, attempts)',
    usage: 'xyra history [--limit N] [--status S] [--json]',
    run: async (args, ctx) => {
      const { values } = parseArgs({
        args,
        options: { limit: { type: 'string' }, status: { type: 'string' }, json: { type: 'boolean', default: false } },
      });
      const limit = positiveInt('limit', values.limit, 20);
      const { systemDatabaseUrl } = await resolveDatabasesForClient(ctx.config);
      const runs = await withDb(systemDatabaseUrl, (db) => listBatchRuns(db, { limit, status: values.status }));
      if (values.json) json(ctx, runs);
      else if (runs.length === 0) ctx.out('no batch runs recorded yet');
      else historyTable(runs).forEach((l) => ctx.out(l));
      return 0;
    },
  },
  stats: {
    summary: 'batch run figures over a window: statuses, success rate, duration/delay percentiles, retries, missed slots',
    usage: 'xyra stats [--since 24h] [--json]',
    run: async (args, ctx) => {
      const { values } = parseArgs({ args, options: { since: { type: 'string', default: '24h' }, json: { type: 'boolean', default: false } } });
      let windowMs: number;
      try {
        windowMs = parseDuration(values.since);
      } catch (e) {
        throw new UsageError(`--since: ${(e as Error).message}`);
      }
      const { systemDatabaseUrl } = await resolveDatabasesForClient(ctx.config);
      const stats = await withDb(systemDatabaseUrl, (db) => batchStats(db, windowMs));
      if (values.json) json(ctx, stats);
      else statsLines(stats).forEach((l) => ctx.out(l));
      return 0;
    },
  },
  errors: {
    summary: 'latest rows of the pipeline errors table',
    usage: 'xyra errors [--limit N] [--json]',
    run: async (args, ctx) => {
      const { values } = parseArgs({ args, options: { limit: { type: 'string' }, json: { type: 'boolean', default: false } } });
      const limit = positiveInt('limit', values.limit, 20);
      const { appDatabaseUrl } = await resolveDatabasesForClient(ctx.config);
      const rows = await withDb(appDatabaseUrl, (db) => latestErrors(db, limit));
      if (values.json) json(ctx, rows);
      else if (rows.length === 0) ctx.out('no errors recorded');
      else
        renderTable(
          ['CREATED', 'TASK KEY', 'KIND', 'ATT', 'ERROR'],
          rows.map((r) => [
            formatTime(r.created_at),
            r.message.task_key ?? r.error_key,
            r.message.kind ?? '-',
            r.message.attempts === undefined ? '-' : String(r.message.attempts),
            oneLine(errorText(r), 100),
          ]),
        ).forEach((l) => ctx.out(l));
      return 0;
    },
  },
  trigger: {
    summary: 'run an evaluation batch now, outside the cron slots (the running service executes it)',
    usage: 'xyra trigger [--wait] [--timeout SECONDS] [--json]',
    run: async (args, ctx) => {
      const { values } = parseArgs({
        args,
        options: { wait: { type: 'boolean', default: false }, timeout: { type: 'string' }, json: { type: 'boolean', default: false } },
      });
      const timeoutS = positiveInt('timeout', values.timeout, 120);
      const { systemDatabaseUrl } = await resolveDatabasesForClient(ctx.config);
      return withDbosClient(systemDatabaseUrl, ctx.logger, async (client) => {
        const workflowId = await triggerNow(client);
        if (!values.wait) {
          if (values.json) json(ctx, { workflow_id: workflowId });
          else ctx.out(`enqueued ${workflowId}`);
          return 0;
        }
        const outcome = await waitForOutcome(client, workflowId, timeoutS * 1000);
        if (values.json) json(ctx, { workflow_id: workflowId, outcome });
        else if (outcome) ctx.out(`${workflowId}: ${outcome.status} ${outcome.processed}/${outcome.succeeded}/${outcome.failed} ${oneLine(outcome.error ?? outcome.message)}`.trimEnd());
        else ctx.out(`${workflowId}: not finished after ${timeoutS}s (is the service running?)`);
        if (!outcome) return 1;
        return outcome.status === 'failed' ? 1 : 0;
      });
    },
  },
  schedule: {
    summary: 'pause, resume, show or list the next slots of the evaluation-batch schedule',
    usage: 'xyra schedule pause [--note TEXT] | resume | status [--json] | next [--count N] [--from ISO] [--json]',
    run: async (args, ctx) => {
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: {
          json: { type: 'boolean', default: false },
          note: { type: 'string' },
          count: { type: 'string' },
          from: { type: 'string' },
        },
      });
      const action = positionals[0];
      if (positionals.length !== 1 || !['pause', 'resume', 'status', 'next'].includes(action ?? '')) {
        throw new UsageError('expected one of: pause, resume, status, next');
      }
      if (values.note !== undefined && action !== 'pause') throw new UsageError('--note: only with "schedule pause"');
      if (action === 'next') return scheduleNext(ctx, values);
      const databases = await resolveDatabasesForClient(ctx.config);
      if (action === 'pause' || action === 'resume') {
        const result = await withDb(databases.systemDatabaseUrl, (system) =>
          withDb(databases.appDatabaseUrl, (app) =>
            action === 'pause'
              ? pauseSchedule({ system, app }, { note: values.note ?? null, by: 'operator' })
              : resumeSchedule({ system, app }, { by: 'operator' }),
          ),
        );
        if (!result.changed) ctx.logger.info(`schedule already ${action === 'pause' ? 'paused' : 'active'}: nothing changed`);
      }
      return withDbosClient(databases.systemDatabaseUrl, ctx.logger, async (client) => {
        const state = await scheduleState(client);
        if (values.json) json(ctx, state);
        else {
          scheduleLines(state).forEach((l) => ctx.out(l));
          // DBOS's loop re-reads schedules every 5 s; our firing engine and each run's gate check at once.
          if (action !== 'status') ctx.out(`(${action === 'pause' ? 'paused' : 'resumed'}; takes effect at the next slot)`);
        }
        return 0;
      });
    },
  },
};
