// `xyra schedule next`: the slots exactly as the firing loop fires them (same CronSchedule.next), with no
// database and no running service; bad arguments exit 2 naming the option.
import { describe, expect, it } from 'vitest';
import { runCli } from './support/serviceProcess.js';
import { NEW_YORK_2026_CASES } from './support/dstCases.js';

// No database is reached: an unreachable URL proves it.
const env = (cron: string, tz: string) => ({
  BATCH_CRON: cron,
  BATCH_TIMEZONE: tz,
  DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none',
});

describe('xyra schedule next', () => {
  it('lists the New York slots across both 2026 changes as JSON', async () => {
    const results = await Promise.all(
      NEW_YORK_2026_CASES.map((c) =>
        runCli(
          ['schedule', 'next', '--count', String(c.slots.length), '--from', c.from, '--json'],
          env(c.cron, 'America/New_York'),
        ),
      ),
    );
    results.forEach((r, i) => {
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual([...NEW_YORK_2026_CASES[i]!.slots]);
    });
  });

  it('prints a table with local times by default and defaults to 5 slots', async () => {
    const r = await runCli(
      ['schedule', 'next', '--from', '2026-03-08T06:00:00Z'],
      env('30 2 * * *', 'America/New_York'),
    );
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[1]).toContain('2026-03-08T07:00:00.000Z');
    expect(lines[1]).toContain('03:00:00');
  });

  it('exits 2 naming a bad --from or --count', async () => {
    const badFrom = await runCli(['schedule', 'next', '--from', 'yesterday'], env('*/2 * * * *', 'UTC'));
    expect(badFrom.code).toBe(2);
    expect(badFrom.stderr).toContain('--from');
    const badCount = await runCli(['schedule', 'next', '--count', '0'], env('*/2 * * * *', 'UTC'));
    expect(badCount.code).toBe(2);
    expect(badCount.stderr).toContain('--count');
  });

  it('exits 2 naming BATCH_TIMEZONE when the zone is unknown', async () => {
    const r = await runCli(['schedule', 'next'], env('*/2 * * * *', 'Mars/Olympus_Mons'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('BATCH_TIMEZONE');
  });
});
