// The operator commands (history, stats, trigger, schedule, errors) against a database filled by a real
// service process, checked by parsing their --json output and reading their tables.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { produceOutcomeMix, startPopulatedService, type PopulatedDatabase } from './support/batchRuns.js';
import { query } from './support/database.js';
import { runCli } from './support/serviceProcess.js';
import { STATS_SLOT_GRACE_MS } from '../src/ops/stats.js';

let db: PopulatedDatabase;

const historyRow = z.object({
  workflow_id: z.string(),
  status: z.string(),
  workflow_status: z.string(),
  manual: z.boolean(),
  scheduled_time: z.string(),
  actual_time: z.string().nullable(),
  delay_ms: z.number().nullable(),
  duration_ms: z.number().nullable(),
  processed: z.number(),
  succeeded: z.number(),
  failed: z.number(),
  attempts: z.number(),
  retries: z.number(),
  skipped_reason: z.string().nullable(),
  message: z.string().nullable(),
  error: z.string().nullable(),
});
type HistoryRow = z.infer<typeof historyRow>;

async function cli(args: string[]) {
  const r = await runCli(args, db.env);
  if (r.code !== 0) throw new Error(`xyra ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

async function history(args: string[] = []): Promise<HistoryRow[]> {
  if (args.length === 0) return (allHistory ??= readHistory([]));
  return readHistory(args);
}

async function readHistory(args: string[]): Promise<HistoryRow[]> {
  return z.array(historyRow).parse(JSON.parse((await cli(['history', '--json', '--limit', '1000', ...args])).stdout));
}

// The history is fixed once beforeAll has stopped the service (the tests only read it, and add errors rows, which
// it does not show): one `xyra history --json` serves every test that reads all of it, a CLI start each saved.
let allHistory: Promise<HistoryRow[]> | undefined;

let pausedAt = 0;
let resumedAt = 0;
/** How many `trigger` runs beforeAll made (more than one only when the overlap guard skipped one). */
let manualRuns = 0;

beforeAll(async () => {
  db = await startPopulatedService('opscli');
  await produceOutcomeMix(db);
  // A manual run through the CLI, executed by the service's queue workers. The overlap guard holds for manual runs
  // too: one that lands on a cron run still calling the API is skipped ('in_progress'); the test triggers again then.
  for (manualRuns = 1; ; manualRuns++) {
    const trig = await cli(['trigger', '--wait', '--json', '--timeout', '20']);
    triggerOutput = JSON.parse(trig.stdout) as unknown;
    const guarded =
      z.object({ outcome: z.object({ skipped_reason: z.string().optional() }) }).parse(triggerOutput).outcome
        .skipped_reason === 'in_progress';
    if (!guarded || manualRuns === 5) break;
  }
  // Pause: no slot after the service's next schedule poll (5 s) may run.
  await cli(['schedule', 'pause']);
  pausedAt = Date.now();
  await new Promise((r) => setTimeout(r, 7_500));
  statusWhilePaused = JSON.parse((await cli(['schedule', 'status', '--json'])).stdout) as unknown;
  // Taken before asking: a slot between the resume's commit and the CLI's exit rightly runs.
  resumedAt = Date.now();
  await cli(['schedule', 'resume']);
  const seen = db.service.logs.length;
  await db.service.waitForLog(
    (l) =>
      db.service.logs.indexOf(l) >= seen &&
      l.msg === 'batch completed' &&
      Date.parse(String(l.scheduledTime)) > resumedAt,
    20_000,
  );
  expect(await db.service.stop('SIGTERM', 20_000)).toBe(0);
}, 300_000); // a service start, four faulted runs, a 7.5 s pause: minutes on a loaded machine

afterAll(async () => {
  await db?.service.stop('SIGKILL');
  await db?.simulator.stop();
});

let triggerOutput: unknown;
let statusWhilePaused: unknown;

describe('xyra history', () => {
  it('--json: one object per batch run, newest slot first, matching the system tables', async () => {
    const rows = await history();
    const dbos = await query<{ workflow_uuid: string }>(
      db.systemUrl,
      "select workflow_uuid from dbos.workflow_status where name = 'trigger' and class_name = 'EvaluationBatch'",
    );
    expect(rows.map((r) => r.workflow_id).sort()).toEqual(dbos.map((r) => r.workflow_uuid).sort());
    const times = rows.map((r) => Date.parse(r.scheduled_time));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    for (const r of rows.filter((x) => x.actual_time)) {
      expect(r.delay_ms).toBe(Date.parse(r.actual_time!) - Date.parse(r.scheduled_time));
      expect(r.workflow_id).toContain(r.scheduled_time);
    }
  });

  it('status is the latest event status, with counts from the event', async () => {
    const rows = await history();
    const events = await query<{ workflow_uuid: string; value: string }>(
      db.systemUrl,
      "select workflow_uuid, value from dbos.workflow_events where key = 'batch_evaluation_status'",
    );
    expect(events.length).toBeGreaterThan(5);
    for (const e of events) {
      const v = (JSON.parse(e.value) as { json: { status: string; processed: number; failed: number } }).json;
      const row = rows.find((r) => r.workflow_id === e.workflow_uuid);
      expect(row, e.workflow_uuid).toBeDefined();
      expect(row).toMatchObject({ status: v.status, processed: v.processed, failed: v.failed });
    }
  });

  it('shows each outcome of the mix: retried, failed at once, failed after retries, skipped, manual', async () => {
    const rows = await history();
    expect(rows.find((r) => r.status === 'completed' && r.attempts === 2)).toMatchObject({ retries: 1, error: null });
    expect(rows.find((r) => r.status === 'failed' && r.attempts === 1)?.error).toMatch(/400/);
    expect(rows.find((r) => r.status === 'failed' && r.attempts === 3)?.error).toMatch(/gave up after 3 attempts/);
    expect(rows.find((r) => r.status === 'skipped' && r.skipped_reason === null)).toMatchObject({
      message: 'Batch evaluation already in progress',
      attempts: 1,
    });
    const manual = rows.filter((r) => r.manual);
    expect(manual).toHaveLength(manualRuns);
    expect(manual[0]!.workflow_id).toMatch(/^sched-evaluation-batch-trigger-/);
    const completed = rows.filter((r) => r.status === 'completed');
    for (const r of completed) {
      expect(r.processed).toBe(r.succeeded + r.failed);
      expect(r.duration_ms).toBeGreaterThanOrEqual(0);
    }
  });

  it('--status filters and --limit bounds', async () => {
    const failed = await history(['--status', 'failed']);
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(failed.every((r) => r.status === 'failed')).toBe(true);
    const two = z.array(historyRow).parse(JSON.parse((await cli(['history', '--json', '--limit', '2'])).stdout));
    expect(two.map((r) => r.workflow_id)).toEqual((await history()).slice(0, 2).map((r) => r.workflow_id));
  });

  it('prints a table without --json', async () => {
    const { stdout } = await cli(['history', '--limit', '50']);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SLOT\s+STARTED\s+DELAY\s+DURATION\s+STATUS\s+P\/S\/F\s+ATT\s+MESSAGE \/ ERROR$/);
    expect(lines.length).toBeGreaterThan(6);
    expect(stdout).toMatch(/failed .*gave up after 3 attempts/);
    expect(stdout).toMatch(/\(manual\)/);
  });

  it('rejects a bad --limit with exit 2', async () => {
    const r = await runCli(['history', '--limit', 'x'], db.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--limit must be a positive whole number/);
  });
});

describe('xyra stats', () => {
  it('--json figures agree with the history rows', async () => {
    // `stats` judges a slot "without run" only once it is STATS_SLOT_GRACE_MS old: wait until the pause's first slot is.
    await new Promise((r) => setTimeout(r, Math.max(0, pausedAt + 2_000 + STATS_SLOT_GRACE_MS + 500 - Date.now())));
    const rows = (await history()).filter((r) => Date.now() - Date.parse(r.scheduled_time) < 3_600_000);
    const stats = z
      .object({
        runs: z.number(),
        manual_runs: z.number(),
        by_status: z.record(z.string(), z.number()),
        success_rate: z.number(),
        delay_ms: z.object({ p50: z.number(), p95: z.number(), max: z.number() }),
        duration_ms: z.object({ p50: z.number(), p95: z.number(), max: z.number() }),
        retries: z.object({
          api_runs: z.number(),
          runs_with_retries: z.number(),
          total_retries: z.number(),
          retry_rate: z.number(),
        }),
        missed_slots: z.number(),
        slots_without_run: z.number(),
        in_progress_skips: z.number(),
      })
      .parse(JSON.parse((await cli(['stats', '--since', '1h', '--json'])).stdout));
    expect(stats.runs).toBe(rows.length);
    expect(stats.manual_runs).toBe(manualRuns);
    const count = (s: string) => rows.filter((r) => r.status === s).length;
    expect(stats.by_status).toEqual(
      Object.fromEntries([...new Set(rows.map((r) => r.status))].sort().map((s) => [s, count(s)])),
    );
    expect(stats.success_rate).toBeCloseTo(count('completed') / (count('completed') + count('failed')), 6);
    const delays = rows
      .filter((r) => !r.manual && r.skipped_reason !== 'missed' && r.delay_ms !== null)
      .map((r) => r.delay_ms!);
    expect(stats.delay_ms.max).toBe(Math.max(...delays));
    expect(stats.delay_ms.p50).toBeLessThanOrEqual(stats.delay_ms.p95);
    expect(stats.duration_ms.max).toBe(
      Math.max(...rows.filter((r) => r.duration_ms !== null).map((r) => r.duration_ms!)),
    );
    expect(stats.retries).toEqual({
      api_runs: rows.filter((r) => r.attempts > 0).length,
      runs_with_retries: rows.filter((r) => r.attempts > 1).length,
      total_retries: rows.reduce((n, r) => n + r.retries, 0),
      retry_rate: rows.filter((r) => r.attempts > 1).length / rows.filter((r) => r.attempts > 0).length,
    });
    expect(stats.retries.runs_with_retries).toBe(2);
    expect(stats.in_progress_skips).toBe(rows.filter((r) => r.skipped_reason === 'in_progress').length);
    expect(stats.missed_slots).toBe(rows.filter((r) => r.skipped_reason === 'missed').length);
    // The pause left cron slots with no run (unless DBOS backfilled them on resume, then they are missed).
    expect(stats.slots_without_run + stats.missed_slots).toBeGreaterThan(0);
  });

  it('prints readable figures and rejects a bad window', async () => {
    const { stdout } = await cli(['stats', '--since', '2h']);
    expect(stdout).toMatch(/success rate\s+\d+\.\d%/);
    expect(stdout).toMatch(/delay\s+p50 \S+\s+p95 \S+\s+max \S+/);
    expect(stdout).toMatch(/retries\s+2 of \d+ API runs retried/);
    const bad = await runCli(['stats', '--since', 'yesterday'], db.env);
    expect(bad.code).toBe(2);
  });

  it('an empty window reports zero runs, not an error', async () => {
    const stats = JSON.parse((await cli(['stats', '--since', '1s', '--json'])).stdout) as {
      runs: number;
      success_rate: unknown;
    };
    expect(stats).toMatchObject({ runs: 0, success_rate: null });
  });
});

describe('xyra trigger and schedule', () => {
  it('trigger --wait runs a batch now through the service and reports its outcome', async () => {
    const out = z
      .object({
        workflow_id: z.string().regex(/^sched-evaluation-batch-trigger-/),
        outcome: z.object({ status: z.string(), processed: z.number() }),
      })
      .parse(triggerOutput);
    expect(out.outcome.status).toBe('completed');
    const [row] = await query<{ status: string; queue_name: string }>(
      db.systemUrl,
      'select status, queue_name from dbos.workflow_status where workflow_uuid = $1',
      [out.workflow_id],
    );
    expect(row).toEqual({ status: 'SUCCESS', queue_name: 'evaluation-batch' });
  });

  it('schedule pause stops new slots within the poll interval; resume restarts them', async () => {
    expect(statusWhilePaused).toMatchObject({
      name: 'evaluation-batch',
      status: 'PAUSED',
      cron: '*/2 * * * * *',
      next_slot: null,
    });
    const rows = await history();
    // Nothing starts while paused, and on resume the paused slots are not backfilled (pause means pause).
    const startedWhilePaused = rows.filter(
      (r) =>
        !r.manual &&
        r.actual_time !== null &&
        Date.parse(r.actual_time) > pausedAt + 5_500 &&
        Date.parse(r.actual_time) < resumedAt,
    );
    expect(startedWhilePaused).toEqual([]);
    expect(
      rows.filter(
        (r) =>
          !r.manual &&
          Date.parse(r.scheduled_time) > pausedAt &&
          Date.parse(r.scheduled_time) < resumedAt &&
          r.status !== 'skipped',
      ),
    ).toEqual([]);
    expect(rows.some((r) => Date.parse(r.scheduled_time) > resumedAt && r.status === 'completed')).toBe(true);
    const status = JSON.parse((await cli(['schedule', 'status', '--json'])).stdout) as { status: string };
    expect(status.status).toBe('ACTIVE');
  });

  it('schedule with a bad action exits 2', async () => {
    const r = await runCli(['schedule', 'stop'], db.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/status, pause, resume, next, backfill/);
  });
});

describe('xyra errors', () => {
  // The pipeline (xyra ingest) fills this table; rows here are shaped as its contract describes.
  it('shows the latest errors rows, newest first, readable and as JSON', async () => {
    for (let i = 1; i <= 3; i++) {
      await query(
        db.appUrl,
        `insert into errors (error_key, message, created_at) values ($1, $2, now() - make_interval(secs => $3))`,
        [
          `small:${i}`,
          JSON.stringify({
            error: `transform failed for record ${i}`,
            kind: 'transform_failed',
            task_key: `small:${i}`,
            attempts: 1,
            record: { id: i },
          }),
          10 - i,
        ],
      );
    }
    const rows = z
      .array(z.object({ error_key: z.string(), message: z.object({ error: z.string() }) }))
      .parse(JSON.parse((await cli(['errors', '--json', '--limit', '2'])).stdout));
    expect(rows.map((r) => r.error_key)).toEqual(['small:3', 'small:2']);
    const { stdout } = await cli(['errors']);
    expect(stdout).toMatch(/^CREATED\s+TASK KEY\s+KIND\s+ATT\s+ERROR/);
    expect(stdout).toMatch(/small:1\s+transform_failed\s+1\s+transform failed for record 1/);
  });
});
