// The firing loop (the code the service runs at each slot) driven by an injected clock across the
// daylight-saving changes: it fires exactly the slots CronSchedule lists, each once, at its instant.
import { describe, expect, it } from 'vitest';
import { CronSchedule } from '../src/evaluation/cron.js';
import { SlotFirer, type Clock } from '../src/evaluation/slotFiring.js';
import { NEW_YORK_2026_CASES } from './support/dstCases.js';

/** A clock whose sleeps advance it at once. */
function fakeClock(startMs: number): Clock & { sleeps: number[] } {
  let now = startMs;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    async sleepUntil(atMs) {
      sleeps.push(atMs);
      now = Math.max(now, atMs);
      await Promise.resolve();
    },
  };
}

async function fireUntil(schedule: CronSchedule, fromIso: string, count: number) {
  const clock = fakeClock(Date.parse(fromIso));
  const fired: Array<{ slot: string; at: number }> = [];
  let done!: () => void;
  const enough = new Promise<void>((r) => (done = r));
  const firer = new SlotFirer({
    schedule,
    clock,
    fire: async (slot) => {
      fired.push({ slot: slot.toISOString(), at: clock.now() });
      if (fired.length === count) done();
    },
  });
  firer.start();
  await enough;
  await firer.stop();
  return fired.slice(0, count);
}

describe('SlotFirer across daylight-saving changes (America/New_York, 2026)', () => {
  for (const c of NEW_YORK_2026_CASES) {
    it(`fires "${c.cron}" from ${c.from} exactly at the listed slots`, async () => {
      const fired = await fireUntil(new CronSchedule(c.cron, 'America/New_York'), c.from, c.slots.length);
      expect(fired.map((f) => f.slot)).toEqual([...c.slots]);
      // Woken exactly at the slot, never before.
      for (const f of fired) expect(f.at).toBe(Date.parse(f.slot));
    });
  }

  it('keeps going after a failed fire', async () => {
    const clock = fakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const fired: string[] = [];
    const errors: string[] = [];
    let done!: () => void;
    const enough = new Promise<void>((r) => (done = r));
    const firer = new SlotFirer({
      schedule: new CronSchedule('* * * * * *'),
      clock,
      fire: async (slot) => {
        fired.push(slot.toISOString());
        if (fired.length === 1) throw new Error('database away');
        done();
      },
      onError: (slot) => errors.push(slot.toISOString()),
    });
    firer.start();
    await enough;
    await firer.stop();
    expect(errors).toEqual(['2026-01-01T00:00:01.000Z']);
    expect(fired.slice(0, 2)).toEqual(['2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z']);
  });
});
