import { describe, expect, it } from 'vitest';
import { decideCatchUp } from '../src/evaluation/catchUp.js';
import { CronSchedule } from '../src/evaluation/cron.js';

const cron = new CronSchedule('*/2 * * * *');
const slot = new Date('2026-01-01T10:00:00.000Z');
const at = (ms: number) => new Date(slot.getTime() + ms);

describe('decideCatchUp', () => {
  it('runs an on-time slot under every policy', () => {
    for (const policy of ['latest', 'all', 'none'] as const) {
      expect(decideCatchUp(policy, cron, slot, at(800), false).run).toBe(true);
    }
  });

  it('latest: skips a slot whose successor is already due, runs a late one that is still the newest', () => {
    const superseded = decideCatchUp('latest', cron, slot, at(121_000), false);
    expect(superseded.run).toBe(false);
    expect(superseded.message).toMatch(/Missed slot.*10:02:00/);
    expect(decideCatchUp('latest', cron, slot, at(90_000), false).run).toBe(true);
  });

  it('none: skips any slot that starts more than half an interval late', () => {
    expect(decideCatchUp('none', cron, slot, at(59_000), false).run).toBe(true);
    const missed = decideCatchUp('none', cron, slot, at(61_000), false);
    expect(missed.run).toBe(false);
    expect(missed.message).toMatch(/Missed slot/);
  });

  it('all: runs every slot however late', () => {
    expect(decideCatchUp('all', cron, slot, at(3_600_000), false).run).toBe(true);
  });

  it('never treats a manual trigger as missed', () => {
    expect(decideCatchUp('none', cron, slot, at(3_600_000), true).run).toBe(true);
  });

  it('understands 6-field (seconds) crontabs', () => {
    expect(decideCatchUp('latest', new CronSchedule('*/2 * * * * *'), slot, at(1_500), false).run).toBe(true);
    expect(decideCatchUp('latest', new CronSchedule('*/2 * * * * *'), slot, at(2_000), false).run).toBe(false);
  });

  it('latest: a slot is superseded only by a successor that was itself missed before start-up', () => {
    // Up at +30 s (down until then), started at +125 s: the successor (+120 s) came due while starting.
    expect(decideCatchUp('latest', cron, slot, at(125_000), false, at(30_000)).run).toBe(true);
    // Up at +121 s: the successor at +120 s was missed too, so this slot is superseded.
    expect(decideCatchUp('latest', cron, slot, at(125_000), false, at(121_000)).run).toBe(false);
  });
});
