// `xyra schedule backfill --from ISO --to ISO` against a real service process: every slot in the range gets
// exactly one run under its slot ID, runs one after another, is not skipped as missed by the catch-up policy
// (default `latest`), and asking again (same range, or one that overlaps) adds no run for a slot that has one.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { CronSchedule } from '../src/evaluation/cron.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

// Daily at 03:00 UTC: no slot of its own fires while the test runs (unless run at 03:00), so every run is a backfill.
const CRON = '0 0 3 * * *';
const DAY = 86_400_000;

const simulator = new XyraSimulator();
let service: ServiceProcess;
let env: Record<string, string>;
let appUrl: string;

const resultSchema = z.object({
  slots: z.array(z.string()),
  already_run: z.array(z.string()),
  enqueued: z.array(z.string()),
  request_id: z.string().nullable(),
});
const runSchema = z.object({
  workflow_id: z.string(),
  status: z.string(),
  scheduled_time: z.string(),
  actual_time: z.string().nullable(),
  completed_at: z.string().nullable(),
  skipped_reason: z.string().nullable(),
});
type Run = z.infer<typeof runSchema>;

beforeAll(async () => {
  const apiUrl = await simulator.start();
  // Slow enough that runs started together would overlap (and the overlap guard would skip one).
  simulator.inject({ type: 'latency', ms: 400 });
  appUrl = await createMigratedTestDatabase('backfill');
  env = {
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    BATCH_CRON: CRON,
    EXECUTOR_ID: 'backfill',
    SHUTDOWN_TIMEOUT_MS: '5000',
  };
  service = startServiceProcess(env);
  await service.waitForLog(isReady, READY_TIMEOUT_MS);
}, 180_000);

afterAll(async () => {
  await service?.stop('SIGKILL');
  await simulator.stop();
});

async function backfill(from: Date, to: Date) {
  const r = await runCli(
    ['schedule', 'backfill', '--from', from.toISOString(), '--to', to.toISOString(), '--json'],
    env,
  );
  expect(r.code, r.stderr).toBe(0);
  return resultSchema.parse(JSON.parse(r.stdout));
}

/** Batch runs as the system tables hold them (the history view installed by the service). */
async function runs(): Promise<Run[]> {
  const rows = await query(
    systemDatabaseUrlOf(appUrl),
    `select workflow_id, status, scheduled_time, actual_time, completed_at, skipped_reason from xyra.batch_runs order by scheduled_time`,
  );
  return rows.map((r) =>
    runSchema.parse(
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
    ),
  );
}

async function waitForFinished(count: number, timeoutMs = 30_000): Promise<Run[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await runs();
    if (all.filter((r) => r.completed_at !== null).length >= count) return all;
    if (Date.now() > deadline)
      throw new Error(
        `only ${all.filter((r) => r.completed_at).length} of ${count} runs finished: ${JSON.stringify(all)}`,
      );
    await new Promise((r) => setTimeout(r, 300));
  }
}

it('runs each slot of the range once, one after another, not skipped as missed; again adds nothing', async () => {
  const now = new Date();
  const from = new Date(now.getTime() - 5 * DAY);
  const expected = new CronSchedule(CRON).slotsBetween(from, now).map((d) => d.toISOString());
  expect(expected).toHaveLength(5);

  const first = await backfill(from, now);
  expect(first).toMatchObject({ slots: expected, already_run: [], enqueued: expected });
  expect(first.request_id).not.toBeNull();

  const done = await waitForFinished(5);
  expect(done.map((r) => r.workflow_id)).toEqual(expected.map((s) => `sched-evaluation-batch-${s}`));
  for (const r of done) expect(r).toMatchObject({ status: 'completed', skipped_reason: null });
  // One after another: each run starts after the previous one finished.
  const byStart = [...done].sort((a, b) => Date.parse(a.actual_time!) - Date.parse(b.actual_time!));
  for (let i = 1; i < byStart.length; i++) {
    expect(Date.parse(byStart[i]!.actual_time!)).toBeGreaterThanOrEqual(Date.parse(byStart[i - 1]!.completed_at!));
  }
  const keys = () => simulator.calls.map((c) => c.idempotencyKey).sort();
  expect(keys()).toEqual(done.map((r) => r.workflow_id).sort());

  // The same range again: every slot already has its run.
  const second = await backfill(from, now);
  expect(second).toMatchObject({ slots: expected, already_run: expected, enqueued: [], request_id: null });
  // A wider range: only the two older slots are new.
  const wider = await backfill(new Date(now.getTime() - 7 * DAY), now);
  expect(wider.already_run).toEqual(expected);
  expect(wider.enqueued).toHaveLength(2);
  const all = await waitForFinished(7);
  await new Promise((r) => setTimeout(r, 1_500)); // room for a duplicate run to show up, if there were one
  const final = await runs();
  expect(final).toHaveLength(7);
  expect(final.map((r) => r.status)).toEqual(Array(7).fill('completed'));
  expect(final.map((r) => r.workflow_id)).toEqual(all.map((r) => r.workflow_id));
  expect(keys()).toEqual(final.map((r) => r.workflow_id).sort()); // one API call per slot, no more
  // The request ran from DBOS's internal queue (not the batch queue, whose concurrency may be 1) and finished.
  const [request] = await query<{ status: string; queue_name: string }>(
    systemDatabaseUrlOf(appUrl),
    'select status, queue_name from dbos.workflow_status where workflow_uuid = $1',
    [first.request_id],
  );
  expect(request).toEqual({ status: 'SUCCESS', queue_name: '_dbos_internal_queue' });

  const events = await query<{ kind: string; details: { slots: number; enqueued: number; already_run: number } }>(
    appUrl,
    `select kind, details from schedule_events where kind = 'backfill' order by id`,
  );
  expect(events.map((e) => [e.details.slots, e.details.enqueued, e.details.already_run])).toEqual([
    [5, 5, 0],
    [5, 0, 5],
    [7, 2, 5],
  ]);
  const history = await runCli(['history', '--limit', '50'], env);
  expect(history.stdout).toMatch(/\[backfill\]\s+-\s+-\s+backfill .* 2 slots to run, 5 already run/);
}, 90_000);

it('rejects a bad range with exit 2 naming the argument', async () => {
  const future = new Date(Date.now() + DAY).toISOString();
  const cases: Array<[string[], RegExp]> = [
    [['--from', '2026-11-01T00:00:00', '--to', '2026-11-02T00:00:00Z'], /--from must be an ISO-8601 time with a zone/],
    [['--from', '2026-11-01T00:00:00Z', '--to', future], /--to is in the future/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(['schedule', 'backfill', ...args], env);
    expect(r.code, args.join(' ')).toBe(2);
    expect(r.stderr).toMatch(message);
  }
});
