// Pause means pause: a real service process on real Postgres, the simulator's request log as the witness.
// Under BATCH_CATCH_UP=all (the policy that would run every backfilled slot), no slot inside the pause calls
// the API, and after resume the schedule continues with the next slot.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XyraSimulator } from '../src/simulator/server.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

const CRON = '*/2 * * * * *';
const slotOf = (key: string | null) => Date.parse((key ?? '').replace('sched-evaluation-batch-', ''));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let simulator: XyraSimulator;
let service: ServiceProcess | undefined;

beforeAll(async () => {
  simulator = new XyraSimulator();
  await simulator.start();
});

afterAll(async () => {
  await service?.stop('SIGKILL');
  await simulator.stop();
});

interface EventRow {
  kind: string;
  at: Date;
  note: string | null;
  details: Record<string, unknown>;
}

describe('schedule pause / resume', () => {
  it('calls the API for no slot inside a 10 s pause, records the note, and continues with the next slot', async () => {
    const appUrl = await createMigratedTestDatabase('pause');
    const env = {
      DATABASE_URL: appUrl,
      XYRA_API_URL: simulator.url,
      BATCH_CRON: CRON,
      BATCH_CATCH_UP: 'all',
      EXECUTOR_ID: 'pause-1',
    };
    service = startServiceProcess(env);
    await service.waitForLog(isReady, READY_TIMEOUT_MS);
    await service.waitForLog((l) => l.msg === 'batch completed', 20_000);

    const paused = await runCli(['schedule', 'pause', '--note', 'vendor maintenance'], env);
    expect(paused.stderr).toBe('');
    expect(paused.code).toBe(0);
    await sleep(10_000);
    const resumed = await runCli(['schedule', 'resume'], env);
    expect(resumed.code).toBe(0);

    const events = await query<EventRow>(
      appUrl,
      `select kind, at, note, details from schedule_events where kind in ('paused', 'resumed') order by at`,
    );
    expect(events.map((e) => e.kind)).toEqual(['paused', 'resumed']);
    const [pause, resume] = events as [EventRow, EventRow];
    expect(pause.note).toBe('vendor maintenance');
    expect(pause.details).toMatchObject({ by: 'operator' });
    expect(resume.details).toMatchObject({ by: 'operator', paused_at: pause.at.toISOString() });

    // After resume: DBOS's loop restarts (and would backfill from last_fired_at), the next slots run.
    const resumedAt = resume.at.getTime();
    await service.waitForLog(
      (l) => l.msg === 'batch completed' && Date.parse(String(l.scheduledTime)) > resumedAt + 6_000,
      30_000,
    );
    await service.stop('SIGTERM');
    service = undefined;

    const inPause = (t: number) => t > pause.at.getTime() && t <= resumedAt;
    const pauseSlots = simulator.calls.map((c) => slotOf(c.idempotencyKey)).filter(inPause);
    expect(pauseSlots).toEqual([]);
    // The first slot after the resume ran (the schedule continues with it), and it is the only run between.
    const firstAfter = Math.ceil((resumedAt + 1) / 2000) * 2000;
    const called = new Set(simulator.calls.map((c) => slotOf(c.idempotencyKey)));
    expect(called.has(firstAfter)).toBe(true);
    // Runs DBOS created for slots of the pause (before its loop noticed) were skipped by their gate.
    const runs = await query<{ workflow_uuid: string; value: string }>(
      systemDatabaseUrlOf(appUrl),
      `select s.workflow_uuid, e.value from dbos.workflow_status s
         join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid and e.key = 'batch_evaluation_status'
        where s.workflow_uuid like 'sched-evaluation-batch-%'`,
    );
    const pauseRuns = runs.filter((r) => inPause(slotOf(r.workflow_uuid)));
    // Only slots DBOS enqueued before its loop saw the pause (it polls every second in its first minute)
    // may exist; a backfill of the pause on resume would have created all five or more.
    expect(pauseRuns.length).toBeLessThan(3);
    for (const r of pauseRuns) {
      const status = (JSON.parse(r.value) as { json: { status: string; message?: string } }).json;
      expect(status.status).toBe('skipped');
      expect(status.message).toMatch(/pause/i);
    }
    // The pause spanned at least four slots, so "no call" is not vacuous.
    expect(Math.floor((resumedAt - pause.at.getTime()) / 2000)).toBeGreaterThanOrEqual(4);
  }, 90_000);
});
