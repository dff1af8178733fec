// CronSchedule: the one answer to "when are the slots", with cron(8) daylight-saving rules.
// The DST cases are also driven through the engine's firing loop (test/engineFiring.test.ts) and `xyra schedule next`.
import { describe, expect, it } from 'vitest';
import { CronSchedule, isWildcardCron } from '../src/evaluation/cron.js';
import { NEW_YORK_2026_CASES } from './support/dstCases.js';

const NY = 'America/New_York';
const iso = (dates: Date[]) => dates.map((d) => d.toISOString());

describe('CronSchedule', () => {
  it('reads 5- and 6-field crons in UTC by default', () => {
    expect(iso(new CronSchedule('*/2 * * * *').nextSlots(new Date('2026-01-01T10:00:30Z'), 3))).toEqual([
      '2026-01-01T10:02:00.000Z',
      '2026-01-01T10:04:00.000Z',
      '2026-01-01T10:06:00.000Z',
    ]);
    expect(iso(new CronSchedule('*/10 * * * * *').nextSlots(new Date('2026-01-01T10:00:00Z'), 2))).toEqual([
      '2026-01-01T10:00:10.000Z',
      '2026-01-01T10:00:20.000Z',
    ]);
  });

  it('reads the cron in its time zone, not the process zone', () => {
    expect(new CronSchedule('0 9 * * *', 'Asia/Tokyo').next(new Date('2026-06-01T00:30:00Z')).toISOString()).toBe(
      '2026-06-02T00:00:00.000Z',
    );
    expect(new CronSchedule('0 9 * * *', 'Europe/Paris').next(new Date('2026-06-01T00:30:00Z')).toISOString()).toBe(
      '2026-06-01T07:00:00.000Z',
    );
  });

  it('tells fixed-time crons from wildcard ones', () => {
    expect(isWildcardCron('30 2 * * *')).toBe(false);
    expect(isWildcardCron('0 30 2 * * *')).toBe(false);
    expect(isWildcardCron('@daily')).toBe(false);
    expect(isWildcardCron('*/30 * * * *')).toBe(true);
    expect(isWildcardCron('0 * * * *')).toBe(true);
    expect(isWildcardCron('*/10 * * * * *')).toBe(true);
  });

  for (const c of NEW_YORK_2026_CASES) {
    it(`follows cron(8) across the ${c.from.slice(0, 7)} change for "${c.cron}" in New York`, () => {
      const schedule = new CronSchedule(c.cron, NY);
      expect(iso(schedule.nextSlots(new Date(c.from), c.slots.length))).toEqual(c.slots);
      for (const s of c.slots) expect(schedule.isSlot(new Date(s))).toBe(true);
    });
  }

  it('runs a fixed-time slot exactly once per local day through both changes', () => {
    for (const cron of ['30 2 * * *', '30 1 * * *', '0 2 * * *']) {
      const schedule = new CronSchedule(cron, NY);
      const slots = schedule.slotsBetween(new Date('2026-01-01T05:00:00Z'), new Date('2027-01-01T05:00:00Z'));
      const days = slots.map((s) => new Intl.DateTimeFormat('en-CA', { timeZone: NY }).format(s));
      expect(new Set(days).size).toBe(365);
      expect(slots).toHaveLength(365);
    }
  });

  it('does not count the second autumn 1:30 as a slot (DBOS fires it; our gate skips it)', () => {
    expect(new CronSchedule('30 1 * * *', NY).isSlot(new Date('2026-11-01T06:30:00.000Z'))).toBe(false);
  });

  it('counts slots in a range with the first and last', () => {
    const c = new CronSchedule('* * * * * *').countBetween(
      new Date('2026-01-01T00:00:00Z'),
      new Date('2026-01-01T00:01:00Z'),
    );
    expect(c.count).toBe(60);
    expect(c.first?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(c.last?.toISOString()).toBe('2026-01-01T00:00:59.000Z');
  });

  it('refuses a cron that never fires', () => {
    expect(() => new CronSchedule('0 0 31 2 *').next(new Date())).toThrow();
  });
});
