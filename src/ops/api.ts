// `/api/*`: the dashboard's JSON, from the same functions as the CLI's `--json` (one SQL source). Every
// answer is bounded: a LIMIT on every list, a window on the stats.
import type pg from 'pg';
import { parseDuration, type Config } from '../config.js';
import { ApiRequestError } from '../errors.js';
import { listDatasets } from '../pipeline/datasetsReport.js';
import { latestErrors } from './errorsLog.js';
import { listBatchRuns } from './history.js';
import type { ApiHandler } from './httpServer.js';
import { scheduleStatus } from './scheduleStatus.js';
import { statsReport } from './statsReport.js';
import { SCHEDULE_NAME_PATTERN } from '../evaluation/scheduleSpec.js';

export interface ApiDeps {
  config: Config;
  /** DBOS system database (runs, schedules, chunk workflows). */
  systemPool: pg.Pool;
  /** App database (tasks, errors, schedule_events). */
  appPool: pg.Pool;
}

/** What stands in for a dataset record in `/api/errors` when no DASHBOARD_TOKEN is configured. */
export const RECORD_WITHHELD = '[withheld: records are served only with DASHBOARD_TOKEN set]';

/** `/api/stats?since=` is capped at HISTORY_RETENTION, but never below this. */
const STATS_MIN_CAP_MS = 24 * 3_600_000;

export const RUNS_LIMIT = { default: 100, max: 1_000 };
export const ERRORS_LIMIT = { default: 20, max: 500 };
export const DATASETS_LIMIT = { default: 10, max: 100 };

function limitParam(query: URLSearchParams, bounds: { default: number; max: number }): number {
  const raw = query.get('limit');
  if (raw === null) return bounds.default;
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new ApiRequestError(400, `limit: expected a positive integer, got "${raw}"`);
  return Math.min(Number(raw), bounds.max);
}

async function withClient<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}

/**
 * A run whose workflow threw has DBOS's serialised error as its `error`: name, message and stack, which can hold
 * SQL, file paths and data. Only its name leaves the service; `xyra history --json` (an operator with database
 * access) shows the whole text. The batch's own error messages (from its status event) pass unchanged.
 */
export function publicRunError(error: string | null): string | null {
  if (error === null || !error.startsWith('{"')) return error;
  let name: string | undefined;
  try {
    const parsed = JSON.parse(error) as { name?: unknown };
    if (typeof parsed.name === 'string') name = parsed.name;
  } catch {
    // Cut at 500 characters by the run SQL: read the name from the text.
    name = /"name":"([^"\\]{1,100})"/.exec(error)?.[1];
  }
  return `the workflow failed (${(name ?? 'Error').slice(0, 100)}); details: xyra history --json`;
}

export function createApi(deps: ApiDeps): ApiHandler {
  return async (name, query) => {
    switch (name) {
      case 'schedule':
        return withClient(deps.systemPool, (sys) => scheduleStatus(sys, deps.appPool, deps.config));
      case 'runs': {
        const limit = limitParam(query, RUNS_LIMIT);
        const schedule = query.get('schedule') ?? undefined;
        if (schedule !== undefined && !SCHEDULE_NAME_PATTERN.test(schedule))
          throw new ApiRequestError(400, `schedule: "${schedule.slice(0, 100)}" is not a schedule name`);
        const runs = await withClient(deps.systemPool, (db) => listBatchRuns(db, { limit, schedule }));
        return runs.map((r) => ({ ...r, error: publicRunError(r.error) }));
      }
      case 'stats': {
        let windowMs: number;
        try {
          windowMs = parseDuration(query.get('since') ?? '24h');
        } catch (e) {
          throw new ApiRequestError(400, `since: ${(e as Error).message}`);
        }
        // Runs older than HISTORY_RETENTION are deleted anyway: a longer window only costs work (the scan, the
        // cron walk). The answer's `since` shows the window actually used. At least 24 h, the page's own window.
        windowMs = Math.min(windowMs, Math.max(deps.config.historyRetentionMs, STATS_MIN_CAP_MS));
        return withClient(deps.systemPool, (sys) =>
          statsReport(sys, deps.appPool, windowMs, deps.config.historyRetentionMs),
        );
      }
      case 'errors': {
        const limit = limitParam(query, ERRORS_LIMIT);
        const rows = await withClient(deps.appPool, (db) => latestErrors(db, limit));
        // Without a token anyone who reaches the port reads this: the dataset records (data, possibly personal)
        // stay out of the answer, and the answer says so. With a token every caller holds it.
        if (deps.config.dashboardToken !== undefined) return rows;
        return rows.map((r) => ({ ...r, message: { ...r.message, record: RECORD_WITHHELD }, record_withheld: true }));
      }
      case 'datasets': {
        const limit = limitParam(query, DATASETS_LIMIT);
        return listDatasets(deps.systemPool, deps.appPool, { limit });
      }
      default:
        return undefined;
    }
  };
}
