// BATCH_CATCH_UP_WINDOW: after an outage longer than the window, only the window's slots become workflows;
// the older ones are summed up in ONE schedule_events row. Real service processes on real Postgres.
//
// The outage is made by moving the schedule's fired_through 60 s back while the service is stopped: that
// column is all our engine knows of an outage, so the restart sees exactly a 60 s outage, without
// the test waiting 60 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XyraSimulator } from '../src/simulator/server.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { isReady, READY_TIMEOUT_MS, startServiceProcess, type ServiceProcess } from './support/serviceProcess.js';

let simulator: XyraSimulator;
const running: ServiceProcess[] = [];

beforeAll(async () => {
  simulator = new XyraSimulator();
  await simulator.start();
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  await simulator.stop();
});

const slotOf = (id: string) => Date.parse(id.replace('sched-evaluation-batch-', ''));

describe('catch-up window', () => {
  it('after 60 s down at a 1 s cron with a 20 s window creates at most ~20 slot workflows and one summary', async () => {
    const appUrl = await createTestDatabase('window');
    const sysUrl = systemDatabaseUrlOf(appUrl);
    const env = {
      DATABASE_URL: appUrl,
      XYRA_API_URL: simulator.url,
      BATCH_CRON: '* * * * * *',
      BATCH_CATCH_UP: 'latest',
      BATCH_CATCH_UP_WINDOW: '20s',
      EXECUTOR_ID: 'window-1',
    };
    const first = startServiceProcess(env);
    running.push(first);
    await first.waitForLog(isReady, READY_TIMEOUT_MS);
    await first.waitForLog((l) => l.msg === 'batch completed', 20_000);
    expect(await first.stop('SIGTERM')).toBe(0);

    const [{ created }] = (await query<{ created: number }>(
      sysUrl,
      `select min(created_at)::float8 as created from dbos.workflow_status`,
    )) as [{ created: number }];
    const lastFired = new Date(Math.floor(created / 1000) * 1000 - 60_000);
    await query(appUrl, `update schedules set fired_through = $1 where name = 'evaluation-batch'`, [
      lastFired.toISOString(),
    ]);
    const upAt = Date.now();

    const second = startServiceProcess(env);
    running.push(second);
    await second.waitForLog(isReady, READY_TIMEOUT_MS);
    const readyAt = Date.now(); // the catch-up (and its window) was decided before ready
    await second.waitForLog(
      (l) => l.msg === 'batch completed' && Date.parse(String(l.scheduledTime)) > upAt + 2_000,
      20_000,
    );
    expect(await second.stop('SIGTERM')).toBe(0);

    const events = await query<{
      kind: string;
      details: { count: number; first_slot: string; last_slot: string; window_ms: number };
    }>(appUrl, `select kind, details from schedule_events where kind not in ('created', 'updated')`);
    expect(events.map((e) => e.kind)).toEqual(['missed_summary']);
    const summary = events[0]!.details;
    expect(summary.window_ms).toBe(20_000);
    expect(Date.parse(summary.first_slot)).toBe(lastFired.getTime() + 1_000);
    expect(summary.count).toBe((Date.parse(summary.last_slot) - Date.parse(summary.first_slot)) / 1_000 + 1);
    // The summary ends where the window begins: 20 s before the restart.
    expect(Date.parse(summary.last_slot)).toBeGreaterThan(upAt - 20_000 - 2_000);
    expect(Date.parse(summary.last_slot)).toBeLessThanOrEqual(readyAt - 20_000);

    const ids = (
      await query<{ workflow_uuid: string }>(
        sysUrl,
        `select workflow_uuid from dbos.workflow_status where workflow_uuid like 'sched-evaluation-batch-2%'`,
      )
    ).map((r) => r.workflow_uuid);
    const outage = ids.map(slotOf).filter((t) => t > lastFired.getTime() && t < upAt);
    // No workflow for a summed-up slot; at most the window's ~20 slots (plus the few of start-up) became runs.
    expect(outage.filter((t) => t <= Date.parse(summary.last_slot))).toEqual([]);
    expect(outage.filter((t) => t > Date.parse(summary.last_slot) + 22_000)).toEqual([]);
    // Every outage slot is accounted for: summed up, or a run of its own.
    const end = readyAt - 2_000;
    const afterSummary = ids.map(slotOf).filter((t) => t > Date.parse(summary.last_slot) && t < end);
    const expected = (Math.ceil(end / 1000) * 1000 - Date.parse(summary.last_slot)) / 1000 - 1;
    expect(new Set(afterSummary).size).toBe(expected);
  }, 90_000);
});
