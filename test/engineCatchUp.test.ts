// After downtime, our cron rules decide which slots are caught up (never DBOS's matcher): a day that matches
// only one of the two day fields, and a fixed-time slot skipped by the spring change (run at the change), are
// both caught up. In-process service on real Postgres (the engine's clock injected through catchUp's `now`),
// real simulator; each slot's run calls the API once.
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { DBOS } from '@dbos-inc/dbos-sdk';
import { ownerOf, ScheduleEngine } from '../src/evaluation/engine.js';
import { EvaluationBatch } from '../src/evaluation/evaluationBatch.js';
import { slotWorkflowIdOf } from '../src/evaluation/slotContext.js';
import { parseScheduleSpec } from '../src/evaluation/scheduleSpec.js';
import { createSchedule, getScheduleRow } from '../src/evaluation/scheduleStore.js';
import { createLogger } from '../src/logger.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createTestDatabase, query } from './support/database.js';
import { startInProcessService, type InProcessService } from './support/inProcessService.js';

const simulator = new XyraSimulator();
let running: InProcessService | undefined;
let appUrl: string;
let appPool: pg.Pool;
let systemPool: pg.Pool;
const logger = createLogger('warn', new PassThrough());
const defaults = { timezone: 'UTC', catchUp: 'all' as const, catchUpWindow: '30d', pauseAfterFailures: 0 };

beforeAll(async () => {
  const apiUrl = await simulator.start();
  appUrl = await createTestDatabase('engcatchup');
  const config = loadConfig({
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    BATCH_CRON: '0 0 1 1 *',
    BATCH_CATCH_UP: 'all',
    EXECUTOR_ID: 'engine-catchup',
  });
  running = await startInProcessService(config, { logger, schedule: false });
  ({ appPool, systemPool } = running);
}, 90_000);

afterAll(async () => {
  await running?.stop();
  await simulator.stop();
});

async function calledSlots(name: string, expected: number): Promise<string[]> {
  const prefix = `sched-${name}-`;
  const deadline = Date.now() + 60_000;
  const slots = () =>
    simulator.calls
      .filter((c) => c.idempotencyKey?.startsWith(prefix))
      .map((c) => c.idempotencyKey!.slice(prefix.length));
  while (slots().length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500)); // nothing more arrives
  return slots().sort();
}

async function downtime(
  name: string,
  cron: string,
  timezone: string,
  from: string,
  to: string,
): Promise<ScheduleEngine> {
  await createSchedule(appPool, parseScheduleSpec({ name, cron, timezone, catch_up: 'all' }, defaults), 'api');
  // The schedule last fired at `from`; no replica ran until `to`.
  await query(appUrl, `update schedules set fired_through = $2 where name = $1`, [name, from]);
  const engine = new ScheduleEngine({ appPool, systemPool, appDatabaseUrl: appUrl, logger });
  await engine.catchUp(new Date(to));
  return engine;
}

describe('catch-up after downtime, by our cron rules', () => {
  it('catches up a day that matches only one of the two day fields (cron(8) OR)', async () => {
    // Noon on the 15th or on Fridays: Fri 13th, Sun 15th (day-of-month only), Fri 20th. DBOS's matcher (AND) has none.
    await downtime('either-day', '0 12 15 * 5', 'UTC', '2026-02-10T00:00:00Z', '2026-02-21T00:00:00Z');
    expect(await calledSlots('either-day', 3)).toEqual([
      '2026-02-13T12:00:00.000Z',
      '2026-02-15T12:00:00.000Z',
      '2026-02-20T12:00:00.000Z',
    ]);
    const [row] = await query<{ fired_through: Date }>(
      appUrl,
      `select fired_through from schedules where name = 'either-day'`,
    );
    expect(row!.fired_through.toISOString()).toBe('2026-02-20T12:00:00.000Z');
  }, 90_000);

  it('catches up the spring-forward slot of a fixed-time cron (run at the change, 03:00 EDT)', async () => {
    await downtime('spring', '30 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', '2026-03-09T12:00:00Z');
    expect(await calledSlots('spring', 2)).toEqual(['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']);
  }, 90_000);

  it('sums up slots older than the catch-up window in one event instead of running them', async () => {
    await query(appUrl, `delete from schedules where name in ('either-day', 'spring')`); // only this one catches up
    await createSchedule(
      appPool,
      parseScheduleSpec({ name: 'windowed', cron: '0 * * * *', catch_up: 'all', catch_up_window: '3h' }, defaults),
      'api',
    );
    await query(appUrl, `update schedules set fired_through = $1 where name = 'windowed'`, ['2026-04-01T00:00:00Z']);
    const engine = new ScheduleEngine({ appPool, systemPool, appDatabaseUrl: appUrl, logger });
    await engine.catchUp(new Date('2026-04-02T00:30:00Z'));
    // Window starts 21:30: 22:00, 23:00, 00:00 run; 01:00 … 21:00 (21 slots) are summed up.
    expect(await calledSlots('windowed', 3)).toEqual([
      '2026-04-01T22:00:00.000Z',
      '2026-04-01T23:00:00.000Z',
      '2026-04-02T00:00:00.000Z',
    ]);
    const events = await query<{ details: Record<string, unknown> }>(
      appUrl,
      `select details from schedule_events where schedule_name = 'windowed' and kind = 'missed_summary'`,
    );
    expect(events.map((e) => e.details)).toEqual([
      expect.objectContaining({
        count: 21,
        first_slot: '2026-04-01T01:00:00.000Z',
        last_slot: '2026-04-01T21:00:00.000Z',
      }),
    ]);
  }, 90_000);
});

describe('a herd on several replicas: each starts its own share first', () => {
  const HERD = 12;
  /**
   * The herd's schedules, and the first slot of theirs at least 2 s ahead (time to set up before it fires). They end
   * right after that slot: an engine that takes long on a loaded machine finds no second slot to count.
   */
  async function herd(prefix: string): Promise<{ names: string[]; slot: Date }> {
    await query(appUrl, `delete from schedules where name <> 'evaluation-batch'`);
    const slot = new Date(Math.ceil((Date.now() + 2_000) / 5_000) * 5_000);
    const names = Array.from({ length: HERD }, (_, i) => `${prefix}-${i}`);
    const end_at = new Date(slot.getTime() + 1_000).toISOString();
    for (const name of names)
      await createSchedule(appPool, parseScheduleSpec({ name, cron: '*/5 * * * * *', end_at }, defaults), 'api');
    return { names, slot };
  }
  const byOwner = (names: string[], slot: Date, index: number) =>
    names.filter((name) => ownerOf({ row: { name }, slot }, 2) === index);

  async function fireOnce(share: { index: number; count: number }, slot: Date): Promise<ScheduleEngine> {
    const engine = new ScheduleEngine({ appPool, systemPool, appDatabaseUrl: appUrl, logger, share: () => share });
    await engine.start(new Date(slot.getTime() - 1)); // its first slot is `slot`, however long the set-up took
    const deadline = Date.now() + 30_000;
    while (engine.firedCount < HERD && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await engine.stop();
    return engine;
  }

  it('starts only its own share when the other replica has started its share', async () => {
    const prefix = 'shared';
    const { names, slot } = await herd(prefix);
    const theirs = byOwner(names, slot, 1);
    expect(theirs.length).toBeGreaterThan(0);
    expect(theirs.length).toBeLessThan(HERD);
    // The other replica (index 1) started its share of the slot, as its engine does.
    const rows = await getScheduleRows(theirs);
    for (const row of rows)
      await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: slotWorkflowIdOf(row.name, slot) })(slot, {
        schedule: row.name,
        version: row.version,
      });
    const engine = await fireOnce({ index: 0, count: 2 }, slot);
    expect(engine.startsAttempted).toBe(HERD - theirs.length);
    expect(engine.startsBackedUp).toBe(0);
    // Every slot's run called the API once, whoever started it.
    const ids = names.map((name) => slotWorkflowIdOf(name, slot).slice(`sched-${prefix}-`.length)).sort();
    expect(await calledSlots(prefix, HERD)).toEqual(ids);
  }, 90_000);

  it("starts the other replica's share itself when that replica did not (gone, or behind)", async () => {
    const prefix = 'orphan';
    const { names, slot } = await herd(prefix);
    const theirs = byOwner(names, slot, 1);
    expect(theirs.length).toBeGreaterThan(0);
    const engine = await fireOnce({ index: 0, count: 2 }, slot);
    expect(engine.startsBackedUp).toBe(theirs.length);
    expect(engine.startsAttempted).toBe(HERD);
    // Every slot's run called the API once, whoever started it.
    const ids = names.map((name) => slotWorkflowIdOf(name, slot).slice(`sched-${prefix}-`.length)).sort();
    expect(await calledSlots(prefix, HERD)).toEqual(ids);
  }, 90_000);
});

async function getScheduleRows(names: string[]) {
  const rows = [];
  for (const name of names) rows.push((await getScheduleRow(appPool, name))!);
  return rows;
}
