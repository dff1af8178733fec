// The engine's firing loop (the code every replica runs at each slot), driven by an injected clock across the
// daylight-saving changes: it starts exactly the slots SpecSlots lists, each once, FIRE_LEAD_MS before its
// instant. Real Postgres holds the schedule rows the engine reads; the run start itself (DBOS) is replaced by a
// recorder, since which slot and when is the question here (engineCatchUp.test.ts starts real runs).
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../src/evaluation/clock.js';
import { FIRE_LEAD_MS, ScheduleEngine } from '../src/evaluation/engine.js';
import { MAX_FIRE_LEAD_MS } from '../src/evaluation/slotContext.js';
import { parseScheduleSpec } from '../src/evaluation/scheduleSpec.js';
import { createSchedule, type ScheduleRow } from '../src/evaluation/scheduleStore.js';
import { createLogger } from '../src/logger.js';
import { createKnex, migrateLatest } from '../src/runtime/migrations.js';
import { createTestDatabase } from './support/database.js';
import { NEW_YORK_2026_CASES } from './support/dstCases.js';

const logger = createLogger('warn', new PassThrough());
const defaults = { timezone: 'UTC', catchUp: 'latest' as const, catchUpWindow: '24h', pauseAfterFailures: 0 };
let appUrl: string;
let pool: pg.Pool;

beforeAll(async () => {
  appUrl = await createTestDatabase('engfiring');
  const knex = createKnex(appUrl, 1);
  try {
    await migrateLatest(knex);
  } finally {
    await knex.destroy();
  }
  pool = new pg.Pool({ connectionString: appUrl, max: 4 });
}, 60_000);

afterAll(async () => {
  await pool?.end();
});

/** A clock whose sleeps advance it at once (yielding to the event loop, as a real sleep does). */
function fakeClock(startMs: number): Clock {
  let now = startMs;
  return {
    now: () => now,
    async sleepUntil(atMs) {
      now = Math.max(now, atMs);
      await new Promise((r) => setImmediate(r));
    },
  };
}

/** The engine with the run start replaced by a record of (slot, clock time at the start). */
class RecordingEngine extends ScheduleEngine {
  readonly fired: Array<{ schedule: string; slot: string; at: number }> = [];
  constructor(
    private readonly fakeTime: Clock,
    private readonly enough: number,
    private readonly done: () => void,
  ) {
    super({ appPool: pool, systemPool: pool, appDatabaseUrl: appUrl, logger, clock: fakeTime });
  }
  /** Each start of the timer: the slots started together, one group per call. */
  readonly groups: number[] = [];
  override async fireAll(group: ReadonlyArray<{ row: ScheduleRow; slot: Date }>): Promise<void> {
    this.groups.push(group.length);
    for (const { row, slot } of group) {
      this.fired.push({ schedule: row.name, slot: slot.toISOString(), at: this.fakeTime.now() });
      if (this.fired.length === this.enough) this.done();
    }
    await Promise.resolve();
  }
}

async function fireUntil(name: string, cron: string, fromIso: string, count: number) {
  await pool.query('delete from schedules');
  await createSchedule(pool, parseScheduleSpec({ name, cron, timezone: 'America/New_York' }, defaults), 'api');
  // The schedule took effect (and last fired) at `from`: the engine plans from there.
  await pool.query('update schedules set effective_from = $2, fired_through = $2 where name = $1', [name, fromIso]);
  let done!: () => void;
  const enough = new Promise<void>((r) => (done = r));
  const clock = fakeClock(Date.parse(fromIso));
  const engine = new RecordingEngine(clock, count, done);
  await engine.start();
  await enough;
  await engine.stop();
  return engine.fired.slice(0, count);
}

describe('the engine fires across daylight-saving changes (America/New_York, 2026)', () => {
  NEW_YORK_2026_CASES.forEach((c, i) => {
    it(`fires "${c.cron}" from ${c.from} exactly at the listed slots`, async () => {
      const fired = await fireUntil(`dst-${i}`, c.cron, c.from, c.slots.length);
      expect(fired.map((f) => f.slot)).toEqual([...c.slots]);
      // Started FIRE_LEAD_MS before the slot (the run waits for the slot itself), never earlier.
      for (const f of fired) expect(f.at).toBe(Date.parse(f.slot) - FIRE_LEAD_MS);
    }, 60_000);
  });
});

describe('a herd: many schedules due at the same instant', () => {
  it('starts them together, early enough for all of them (a lead that grows with the herd, within the bound)', async () => {
    const count = 200;
    const fromIso = '2026-03-02T10:00:00.000Z';
    await pool.query('delete from schedules');
    for (let i = 0; i < count; i++) {
      const spec = parseScheduleSpec({ name: `herd-${i}`, cron: '*/10 * * * * *', timezone: 'UTC' }, defaults);
      await createSchedule(pool, spec, 'api');
    }
    await pool.query('update schedules set effective_from = $1, fired_through = $1', [fromIso]);
    let done!: () => void;
    const enough = new Promise<void>((r) => (done = r));
    const engine = new RecordingEngine(fakeClock(Date.parse(fromIso)), count * 2, done);
    await engine.start();
    await enough;
    await engine.stop();
    expect(engine.leadFor(1)).toBe(FIRE_LEAD_MS);
    // Two slots, each one group of every schedule, started together further ahead than a single slot's lead (the
    // lead follows the measured start cost, so its figure is not fixed), never beyond the bound.
    expect(engine.groups.slice(0, 2)).toEqual([count, count]);
    const bySlot = new Map<string, number[]>();
    for (const f of engine.fired.slice(0, count * 2)) bySlot.set(f.slot, [...(bySlot.get(f.slot) ?? []), f.at]);
    expect([...bySlot.keys()]).toEqual(['2026-03-02T10:00:10.000Z', '2026-03-02T10:00:20.000Z']);
    for (const [slot, ats] of bySlot) {
      expect(ats).toHaveLength(count);
      expect(new Set(ats).size).toBe(1);
      const lead = Date.parse(slot) - ats[0]!;
      expect(lead).toBeGreaterThan(FIRE_LEAD_MS);
      expect(lead).toBeLessThanOrEqual(MAX_FIRE_LEAD_MS);
    }
  }, 60_000);
});

/** A clock the test moves: sleeps end when it is moved past their instant (or on abort). */
function manualClock(startMs: number) {
  let now = startMs;
  const sleepers = new Set<{ at: number; wake: () => void }>();
  const clock: Clock & { advanceTo(ms: number): Promise<void> } = {
    now: () => now,
    sleepUntil(atMs, signal) {
      if (atMs <= now || signal.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const s = { at: atMs, wake: () => (sleepers.delete(s), resolve()) };
        sleepers.add(s);
        signal.addEventListener('abort', s.wake, { once: true });
      });
    },
    async advanceTo(ms) {
      now = ms;
      for (const s of [...sleepers]) if (s.at <= now) s.wake();
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); // let the loop act on it
    },
  };
  return clock;
}

describe('a change heard late', () => {
  it('fires the slot that fell between a resume and the moment this engine heard of it', async () => {
    await pool.query('delete from schedules');
    const name = 'late-resume';
    await createSchedule(pool, parseScheduleSpec({ name, cron: '*/2 * * * * *', timezone: 'UTC' }, defaults), 'api');
    const t0 = Date.parse('2026-05-04T10:00:00.500Z');
    await pool.query('update schedules set effective_from = $2, fired_through = $2 where name = $1', [
      name,
      new Date(t0),
    ]);
    const clock = manualClock(t0);
    const engine = new RecordingEngine(clock, 99, () => undefined);
    await engine.start();
    await clock.advanceTo(Date.parse('2026-05-04T10:00:02.000Z'));
    expect(engine.fired.map((f) => f.slot)).toEqual(['2026-05-04T10:00:02.000Z']);
    // Paused at 10:00:02.5, resumed at 10:00:05.9 (each change as the store writes it), but this engine hears of
    // the resume only at 10:00:06.3, after the first slot of the resumed schedule.
    await pool.query(`update schedules set status = 'PAUSED', version = version + 1 where name = $1`, [name]);
    await clock.advanceTo(Date.parse('2026-05-04T10:00:02.500Z'));
    await engine.reloadOne(name);
    const resumedAt = new Date('2026-05-04T10:00:05.900Z');
    await pool.query(
      `update schedules set status = 'ACTIVE', version = version + 1, effective_from = $2, fired_through = $2 where name = $1`,
      [name, resumedAt],
    );
    await clock.advanceTo(Date.parse('2026-05-04T10:00:06.300Z'));
    await engine.reloadOne(name);
    await clock.advanceTo(Date.parse('2026-05-04T10:00:06.350Z'));
    await engine.stop();
    expect(engine.fired.map((f) => f.slot)).toEqual(['2026-05-04T10:00:02.000Z', '2026-05-04T10:00:06.000Z']);
  }, 60_000);
});
