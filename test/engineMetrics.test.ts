// The schedule engine feeds the alert metrics for every schedule it knows, including one created at runtime:
// the next slot its timer waits for (checked against CronSchedule), the interval, the pause state from the
// store's row, skip counters at 0 from the
// moment the engine learns the schedule, and "no next slot" (+Inf) once it is paused or deleted, so the
// overdue alert cannot fire on a stale gauge. In-process service on real Postgres, its own /metrics.
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { CronSchedule } from '../src/evaluation/cron.js';
import { parseScheduleSpec } from '../src/evaluation/scheduleSpec.js';
import { createSchedule, deleteSchedule, pauseScheduleRow } from '../src/evaluation/scheduleStore.js';
import { createLogger } from '../src/logger.js';
import { startService, type Service } from '../src/service.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createTestDatabase } from './support/database.js';

const simulator = new XyraSimulator();
let service: Service;
let appPool: pg.Pool;
const logger = createLogger('warn', new PassThrough());
const defaults = { timezone: 'UTC', catchUp: 'all' as const, catchUpWindow: '30d', pauseAfterFailures: 0 };

beforeAll(async () => {
  const apiUrl = await simulator.start();
  const appUrl = await createTestDatabase('engmetrics');
  const config = loadConfig({
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    BATCH_CRON: '0 0 1 1 *',
    EXECUTOR_ID: 'engine-metrics',
    PORT: '0',
    OTEL_METRICS_EXPORTER: 'prometheus',
  });
  service = await startService(config, logger, { healthServer: true });
  appPool = new pg.Pool({ connectionString: appUrl, max: 2 });
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await appPool?.end();
  await simulator.stop();
});

/** The sample of `name` for `schedule` (and `extra` labels), or undefined. */
async function sample(name: string, schedule: string, extra = ''): Promise<number | undefined> {
  const text = await fetch(`http://127.0.0.1:${service.health!.port}/metrics`).then((r) => r.text());
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name || !m[2]!.includes(`schedule="${schedule}"`) || !m[2]!.includes(extra)) continue;
    return m[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[3]);
  }
  return undefined;
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

it('exports each schedule by name from the engine: created at runtime, paused through the store, deleted', async () => {
  // The env schedule, known at start-up: its next slot is the next 1 January.
  const envNext = new CronSchedule('0 0 1 1 *', 'UTC').next(new Date());
  await eventually(
    'evaluation-batch next slot',
    async () => (await sample('xyra_batch_next_slot_time', 'evaluation-batch')) === envNext.getTime() / 1000,
  );

  // Created at runtime: the engine learns it by NOTIFY.
  await createSchedule(appPool, parseScheduleSpec({ name: 'metrics-rt', cron: '0 3 * * *' }, defaults), 'api');
  const next = new CronSchedule('0 3 * * *', 'UTC').next(new Date());
  await eventually(
    'metrics-rt next slot',
    async () => (await sample('xyra_batch_next_slot_time', 'metrics-rt')) === next.getTime() / 1000,
  );
  expect(await sample('xyra_batch_slot_interval', 'metrics-rt')).toBe(86_400);
  expect(await sample('xyra_batch_schedule_paused', 'metrics-rt')).toBe(0);
  expect(await sample('xyra_batch_skipped_slots_total', 'metrics-rt', 'reason="superseded"')).toBe(0);
  expect(await sample('xyra_batch_last_missed_time', 'metrics-rt')).toBe(0);

  await pauseScheduleRow(appPool, 'metrics-rt', { by: 'operator' });
  await eventually('metrics-rt paused', async () => (await sample('xyra_batch_schedule_paused', 'metrics-rt')) === 1);
  expect(await sample('xyra_batch_next_slot_time', 'metrics-rt')).toBe(Number.POSITIVE_INFINITY);
  expect(await sample('xyra_batch_slot_interval', 'metrics-rt')).toBe(86_400);

  await deleteSchedule(appPool, 'metrics-rt', 'operator');
  await eventually(
    'metrics-rt interval gone',
    async () => (await sample('xyra_batch_slot_interval', 'metrics-rt')) === Number.POSITIVE_INFINITY,
  );
  expect(await sample('xyra_batch_next_slot_time', 'metrics-rt')).toBe(Number.POSITIVE_INFINITY);
  // The other schedule is untouched.
  expect(await sample('xyra_batch_next_slot_time', 'evaluation-batch')).toBe(envNext.getTime() / 1000);
}, 150_000);
