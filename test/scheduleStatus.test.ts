// `xyra schedule status`, and the schedule's own log in `history` and `stats`, over runs made by a real service
// process. The pause/resume and missed-slot records are written with recordScheduleEvent (their writers are
// the pause command and the catch-up window); the status function is also called in-process, as the
// dashboard's /api/schedule does, and must agree with the CLI.
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../src/config.js';
import { CronSchedule } from '../src/evaluation/cron.js';
import { recordScheduleEvent } from '../src/evaluation/scheduleEvents.js';
import { scheduleStatus } from '../src/ops/scheduleStatus.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createMigratedTestDatabase, systemDatabaseUrlOf } from './support/database.js';
import { isReady, READY_TIMEOUT_MS, runCli, startServiceProcess } from './support/serviceProcess.js';

const CRON = '*/2 * * * * *';
const simulator = new XyraSimulator();
let env: Record<string, string>;
let appUrl: string;
const app = () => new pg.Client({ connectionString: appUrl });

const statusSchema = z.object({
  name: z.string(),
  cron: z.string(),
  timezone: z.string(),
  status: z.string(),
  paused_reason: z.string().nullable(),
  resumed_at: z.string().nullable(),
  next_slots: z.array(z.string()),
  last_run: z.object({ workflow_id: z.string(), status: z.string(), scheduled_time: z.string() }),
  consecutive_failures: z.number(),
  lag_ms: z.object({ runs: z.number(), p50: z.number(), p95: z.number(), max: z.number() }),
  last_missed_summary: z.object({ details: z.object({ count: z.number() }) }).nullable(),
});
const runSchema = z.object({
  workflow_id: z.string(),
  status: z.string(),
  scheduled_time: z.string(),
  manual: z.boolean(),
  delay_ms: z.number().nullable(),
});

async function cliJson(args: string[]): Promise<unknown> {
  const r = await runCli(args, env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as unknown;
}

let resumedAt = '';
let runsOnly: Array<z.infer<typeof runSchema>> = [];
beforeAll(async () => {
  const apiUrl = await simulator.start();
  appUrl = await createMigratedTestDatabase('schedstatus');
  env = {
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    BATCH_CRON: CRON,
    EXECUTOR_ID: 'schedstatus',
    SHUTDOWN_TIMEOUT_MS: '5000',
  };
  const service = startServiceProcess(env);
  await service.waitForLog(isReady, READY_TIMEOUT_MS);
  let completed = 0;
  await service.waitForLog((l) => l.msg === 'batch completed' && ++completed === 2, 30_000);
  expect(await service.stop('SIGTERM', 20_000)).toBe(0); // a still database from here on
  // The records below come after the start-up's `created` (before ready, so more than the two 2 s slots
  // ago) and in this order; offsets under 2 s keep that however long the start and stop took.
  const db = app();
  await db.connect();
  try {
    const at = (msAgo: number) => new Date(Date.now() - msAgo);
    await recordScheduleEvent(db, {
      scheduleName: 'evaluation-batch',
      kind: 'paused',
      note: 'deploy freeze',
      details: { by: 'operator' },
      at: at(900),
    });
    resumedAt = (
      await recordScheduleEvent(db, {
        scheduleName: 'evaluation-batch',
        kind: 'resumed',
        details: { by: 'operator' },
        at: at(600),
      })
    ).at;
    await recordScheduleEvent(db, {
      scheduleName: 'evaluation-batch',
      kind: 'missed_summary',
      details: {
        count: 1234,
        first_slot: '2026-11-20T00:00:00.000Z',
        last_slot: '2026-11-21T00:00:00.000Z',
        window_ms: 86_400_000,
      },
      at: at(300),
    });
  } finally {
    await db.end();
  }
}, 90_000);

afterAll(async () => {
  await simulator.stop();
});

it('status --json: cron, zone, state, the next 5 slots, last run, failures and lag over 24 h', async () => {
  const before = Date.now();
  const raw = await cliJson(['schedule', 'status', '--json']);
  const status = statusSchema.parse(raw);
  const runs = z.array(runSchema).parse(await cliJson(['history', '--json', '--limit', '100']));
  runsOnly = runs;
  expect(status).toMatchObject({
    name: 'evaluation-batch',
    cron: CRON,
    timezone: 'UTC',
    status: 'ACTIVE',
    paused_reason: null,
    resumed_at: resumedAt,
  });
  // The next 5 slots of the cron after the moment of the call.
  const cron = new CronSchedule(CRON);
  expect(status.next_slots).toEqual(
    cron.nextSlots(new Date(Date.parse(status.next_slots[0]!) - 1), 5).map((d) => d.toISOString()),
  );
  expect(Date.parse(status.next_slots[0]!)).toBeGreaterThan(before);
  expect(Date.parse(status.next_slots[0]!) - before).toBeLessThanOrEqual(30_000);
  expect(status.last_run).toMatchObject({
    workflow_id: runs[0]!.workflow_id,
    status: runs[0]!.status,
    scheduled_time: runs[0]!.scheduled_time,
  });
  expect(status.consecutive_failures).toBe(0);
  const delays = runs.filter((r) => !r.manual && r.delay_ms !== null).map((r) => r.delay_ms!);
  expect(status.lag_ms.runs).toBe(delays.length);
  expect(status.lag_ms.max).toBe(Math.max(...delays));
  expect(status.lag_ms.p50).toBeLessThanOrEqual(status.lag_ms.p95);
  expect(status.last_missed_summary?.details.count).toBe(1234);

  // The function the dashboard calls gives the same document (next slots aside: they move with the clock).
  const sys = new pg.Client({ connectionString: systemDatabaseUrlOf(appUrl) });
  const db = app();
  await Promise.all([sys.connect(), db.connect()]);
  try {
    const direct = await scheduleStatus(sys, db, loadConfig({ ...env }));
    expect({ ...direct, next_slots: [], next_slot: null }).toEqual({
      ...(raw as object),
      next_slots: [],
      next_slot: null,
    });
  } finally {
    await Promise.all([sys.end(), db.end()]);
  }

  const text = await runCli(['schedule', 'status'], env);
  expect(text.stdout).toMatch(/^schedule evaluation-batch: ACTIVE$/m);
  expect(text.stdout).toMatch(/^ {2}resumed {7}\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/m);
  expect(text.stdout).toMatch(/^ {2}lag \(24 h\) {4}p50 \S+ {2}p95 \S+ {2}max \S+ {2}over \d+ runs$/m);
  expect(text.stdout).toMatch(/long outage {3}1234 slots/);
});

it('history shows pauses, resumes and missed-slot summaries among the runs; --json stays runs only', async () => {
  // `history --json` (read in the test above) holds runs only, as the contract says.
  expect(runsOnly.length).toBeGreaterThan(0);
  expect(runsOnly.every((r) => !('type' in r) && r.workflow_id.startsWith('sched-evaluation-batch-'))).toBe(true);

  const entries = z
    .array(
      z.union([
        z.object({ type: z.literal('run'), scheduled_time: z.string() }),
        z.object({ type: z.literal('schedule_event'), kind: z.string(), at: z.string() }),
      ]),
    )
    .parse(await cliJson(['history', '--json', '--events']));
  expect(entries.filter((e) => e.type === 'schedule_event').map((e) => (e as { kind: string }).kind)).toEqual([
    'missed_summary',
    'resumed',
    'paused',
    'created',
  ]); // created: the BATCH_* declaration at start-up
  const times = entries.map((e) => Date.parse(e.type === 'run' ? e.scheduled_time : e.at));
  expect(times).toEqual([...times].sort((a, b) => b - a));
  expect(entries.filter((e) => e.type === 'run')).toHaveLength(runsOnly.length);

  const { stdout } = await runCli(['history'], env);
  const lines = stdout.trimEnd().split('\n');
  const kindAt = (kind: string) => lines.findIndex((l) => l.includes(`[${kind}]`));
  expect(lines[kindAt('paused')]).toMatch(/deploy freeze \(by operator\)/);
  expect(lines[kindAt('missed_summary')]).toMatch(
    /1234 slots 2026-11-20T00:00:00.000Z → 2026-11-21T00:00:00.000Z not run/,
  );
  expect(kindAt('missed_summary')).toBeLessThan(kindAt('resumed'));
  expect(kindAt('resumed')).toBeLessThan(kindAt('paused'));
});

it('stats reports the missed-slot summaries of the window (count and range)', async () => {
  const stats = z
    .object({
      missed_summary: z.object({
        records: z.number(),
        slots: z.number(),
        first_slot: z.string(),
        last_slot: z.string(),
      }),
    })
    .parse(await cliJson(['stats', '--since', '1h', '--json']));
  expect(stats.missed_summary).toEqual({
    records: 1,
    slots: 1234,
    first_slot: '2026-11-20T00:00:00.000Z',
    last_slot: '2026-11-21T00:00:00.000Z',
  });
  const { stdout } = await runCli(['stats', '--since', '1h'], env);
  expect(stdout).toMatch(
    /long outages\s+1234 slots 2026-11-20 00:00:00Z → 2026-11-21 00:00:00Z older than the catch-up window, not run \(1 summaries\)/,
  );
});
