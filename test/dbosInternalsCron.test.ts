// Pins what src/evaluation/cron.ts relies on from DBOS's crontab module: read in UTC it is a pure wall-clock
// matcher over DBOS's full grammar (names, `?`, `L`, nicknames), and null when a cron can never match.
// (The schedule-row half of the adapter is pinned by test/pause.test.ts and test/catchUpWindow.test.ts
// against DBOS's running scheduler: its backfill starts from the last_fired_at we write.)
import { describe, expect, it } from 'vitest';
import { CronSchedule } from '../src/evaluation/cron.js';
import { dbosSchedulerFiresAt, wallClockMatcher } from '../src/runtime/dbosInternals.js';

const next = (cron: string, iso: string) => {
  const v = wallClockMatcher(cron).nextWallTime(Date.parse(iso));
  return v === null ? null : new Date(v).toISOString();
};

describe('wallClockMatcher (DBOS crontab in UTC)', () => {
  it('returns the first matching wall time strictly after the given one', () => {
    expect(next('30 2 * * *', '2026-03-08T02:30:00.000Z')).toBe('2026-03-09T02:30:00.000Z');
    expect(next('*/10 * * * * *', '2026-01-01T00:00:00.000Z')).toBe('2026-01-01T00:00:10.000Z');
  });

  it('reads names, ?, L and nicknames as DBOS does', () => {
    expect(next('0 9 ? * mon', '2026-11-23T09:00:00.000Z')).toBe('2026-11-30T09:00:00.000Z');
    expect(next('0 0 L * *', '2026-02-01T00:00:00.000Z')).toBe('2026-02-28T00:00:00.000Z');
    expect(next('@hourly', '2026-01-01T00:00:00.000Z')).toBe('2026-01-01T01:00:00.000Z');
  });

  it('ignores the process time zone', () => {
    const before = process.env.TZ;
    process.env.TZ = 'Asia/Kolkata';
    try {
      expect(next('0 12 * * *', '2026-01-01T00:00:00.000Z')).toBe('2026-01-01T12:00:00.000Z');
    } finally {
      process.env.TZ = before;
    }
  });
});

describe('dbosSchedulerFiresAt: where DBOS and CronSchedule disagree (the batch gate skips these)', () => {
  const NY = 'America/New_York';
  it('DBOS fires a fixed-time slot a second time in autumn; ours does not', () => {
    const second = new Date('2026-11-01T06:30:00.000Z'); // 01:30 EST, the repeated 01:30
    expect(dbosSchedulerFiresAt('30 1 * * *', NY, second)).toBe(true);
    expect(new CronSchedule('30 1 * * *', NY).isSlot(second)).toBe(false);
  });

  it('DBOS never fires the skipped spring time; ours runs it after the gap', () => {
    const afterGap = new Date('2026-03-08T07:00:00.000Z'); // 03:00 EDT
    expect(dbosSchedulerFiresAt('30 2 * * *', NY, afterGap)).toBe(false);
    expect(new CronSchedule('30 2 * * *', NY).isSlot(afterGap)).toBe(true);
  });
});

