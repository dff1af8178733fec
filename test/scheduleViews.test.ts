// `schedule list` and `/api/schedules`: every schedule's view (last run, consecutive failures, next slots) in a
// fixed number of statements whatever the number of schedules, and each view the same as that schedule's own
// `schedule status` says. Real runs on real Postgres (in-process service, simulator with injected failures).
import { DBOS } from '@dbos-inc/dbos-sdk';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../src/config.js';
import { EvaluationBatch } from '../src/evaluation/evaluationBatch.js';
import { parseScheduleSpec } from '../src/evaluation/scheduleSpec.js';
import { createSchedule, pauseScheduleRow, resumeScheduleRow } from '../src/evaluation/scheduleStore.js';
import { manualWorkflowIdOf, type SlotContext } from '../src/evaluation/slotContext.js';
import { scheduleStatus } from '../src/ops/scheduleStatus.js';
import { listScheduleViews, type ScheduleView } from '../src/ops/scheduleViews.js';
import type { Queryable } from '../src/runtime/databases.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createTestDatabase } from './support/database.js';
import { startInProcessService, type InProcessService } from './support/inProcessService.js';

const simulator = new XyraSimulator();
let running: InProcessService | undefined;
let config: Config;
let appPool: pg.Pool;
let systemPool: pg.Pool;
const defaults = { timezone: 'UTC', catchUp: 'latest' as const, catchUpWindow: '24h', pauseAfterFailures: 0 };

beforeAll(async () => {
  const apiUrl = await simulator.start();
  const appUrl = await createTestDatabase('schedviews');
  config = loadConfig({ DATABASE_URL: appUrl, XYRA_API_URL: apiUrl, XYRA_MAX_ATTEMPTS: '1', EXECUTOR_ID: 'views' });
  running = await startInProcessService(config, { schedule: false });
  ({ appPool, systemPool } = running);
}, 90_000);

afterAll(async () => {
  await running?.stop();
  await simulator.stop();
});

async function create(name: string): Promise<void> {
  await createSchedule(appPool, parseScheduleSpec({ name, cron: '0 * * * *' }, defaults), 'api');
}

/** One manual run of `name`, to its end: `failed` when the API answers 400, else `completed`. */
async function run(name: string, outcome: 'failed' | 'completed'): Promise<string> {
  if (outcome === 'failed') simulator.inject({ type: 'status', status: 400, count: 1 });
  const at = new Date();
  const workflowID = manualWorkflowIdOf(name, at);
  const context: SlotContext = { schedule: name, manual: true };
  const handle = await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID })(at, context);
  const result = await handle.getResult();
  expect(result.status.status).toBe(outcome);
  return workflowID;
}

/** The pools, counting the statements sent through them. */
function counting(pool: pg.Pool): Queryable & { count: number } {
  const c = {
    count: 0,
    query: (text: string, values?: unknown[]) => {
      c.count += 1;
      return pool.query(text, values);
    },
  };
  return c;
}

async function countedList(): Promise<{ views: ScheduleView[]; statements: number }> {
  const sys = counting(systemPool);
  const app = counting(appPool);
  const views = await listScheduleViews(sys, app);
  return { views, statements: sys.count + app.count };
}

describe('schedule views, set-wise', () => {
  it('reads every view in a fixed number of statements, each as `schedule status` reads it alone', async () => {
    // `alpha-b` shares a prefix with `alpha`: neither may see the other's runs.
    for (const name of ['alpha', 'alpha-b', 'gamma', 'delta', 'eps', 'zeta']) await create(name);
    await run('alpha', 'completed');
    await run('alpha', 'failed');
    const alphaLast = await run('alpha', 'failed');
    const alphaBLast = await run('alpha-b', 'failed');
    await run('gamma', 'failed');
    const gammaLast = await run('gamma', 'completed');
    await run('eps', 'failed');
    await run('eps', 'failed');
    await pauseScheduleRow(appPool, 'eps', { by: 'operator' });
    await resumeScheduleRow(appPool, 'eps', 'operator'); // a resume starts a new count
    const epsLast = await run('eps', 'failed');
    await pauseScheduleRow(appPool, 'zeta', { by: 'operator', note: 'quiet' });

    const { views, statements } = await countedList();
    const byName = new Map(views.map((v) => [v.name, v]));
    const summary = (name: string) => {
      const v = byName.get(name)!;
      return {
        last: v.last_run?.workflow_id ?? null,
        status: v.last_run?.status ?? null,
        failures: v.consecutive_failures,
      };
    };
    expect(views.map((v) => v.name)).toEqual(['alpha', 'alpha-b', 'delta', 'eps', 'evaluation-batch', 'gamma', 'zeta']);
    expect(summary('alpha')).toEqual({ last: alphaLast, status: 'failed', failures: 2 });
    expect(summary('alpha-b')).toEqual({ last: alphaBLast, status: 'failed', failures: 1 });
    expect(summary('gamma')).toEqual({ last: gammaLast, status: 'completed', failures: 0 });
    expect(summary('delta')).toEqual({ last: null, status: null, failures: 0 });
    expect(summary('eps')).toEqual({ last: epsLast, status: 'failed', failures: 1 });
    expect(byName.get('zeta')).toMatchObject({ status: 'PAUSED', paused_reason: 'quiet', next_slots: [] });
    expect(byName.get('delta')!.next_slots).toHaveLength(5);

    // The same as each schedule's own status document.
    for (const v of views) {
      const status = await scheduleStatus(systemPool, appPool, config, new Date(), v.name);
      expect({ name: v.name, last: v.last_run?.workflow_id ?? null, failures: v.consecutive_failures }).toEqual({
        name: v.name,
        last: status.last_run?.workflow_id ?? null,
        failures: status.consecutive_failures,
      });
    }

    // Almost twice the schedules (evaluation-batch is one), the same number of statements.
    for (const name of ['eta', 'theta', 'iota', 'kappa', 'lambda', 'mu']) await create(name);
    const more = await countedList();
    expect(more.views).toHaveLength(13);
    expect(more.statements).toBe(statements);
    expect(statements).toBeLessThanOrEqual(4);
  }, 120_000);
});
