// `xyra schedule next`: the slots exactly as the engine fires them (same SpecSlots.next). Without a database
// (or before the `evaluation-batch` row exists) from BATCH_*; with the row, from the row as stored, whatever
// BATCH_* says now. Bad arguments exit 2 naming the option.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parseScheduleSpec } from '../src/evaluation/scheduleSpec.js';
import { createSchedule } from '../src/evaluation/scheduleStore.js';
import { runOpsCommand } from './support/commandInProcess.js';
import { createTestDatabase } from './support/database.js';
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
    const args = (c: (typeof NEW_YORK_2026_CASES)[number]) => [
      'schedule',
      'next',
      '--count',
      String(c.slots.length),
      '--from',
      c.from,
      '--json',
    ];
    // The first case through a real `xyra` process; every case through the command's own code in this process
    // (the same code the CLI loads, without a process start of ~1 s of CPU for each).
    const first = NEW_YORK_2026_CASES[0];
    const real = await runCli(args(first), env(first.cron, 'America/New_York'));
    expect(real.stderr).not.toMatch(/error/i);
    expect(real.code).toBe(0);
    expect(JSON.parse(real.stdout)).toEqual([...first.slots]);
    for (const c of NEW_YORK_2026_CASES) {
      const r = await runOpsCommand(args(c), env(c.cron, 'America/New_York'));
      expect(r.error).toBeUndefined();
      expect(r.logs).not.toMatch(/error/i);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual([...c.slots]);
    }
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

describe('xyra schedule next with the evaluation-batch row stored', () => {
  const from = '2026-01-01T00:00:00Z';
  // BATCH_* now says every 2 minutes in UTC; the stored row says something else.
  const envOf = (url: string) => ({ BATCH_CRON: '*/2 * * * *', BATCH_TIMEZONE: 'UTC', DATABASE_URL: url });
  const next = async (url: string) => {
    const r = await runCli(['schedule', 'next', '--count', '3', '--from', from, '--json'], envOf(url));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as string[];
  };
  const everyTwoMinutes = ['2026-01-01T00:02:00.000Z', '2026-01-01T00:04:00.000Z', '2026-01-01T00:06:00.000Z'];

  it('lists the row as `schedule update` left it, not BATCH_CRON; BATCH_* only before the row exists', async () => {
    const url = await createTestDatabase('schednext');
    // A database that is not migrated yet, then one with no evaluation-batch row: nothing stored, BATCH_*.
    expect(await next(url)).toEqual(everyTwoMinutes);
    const migrate = await runCli(['migrate'], envOf(url));
    expect(migrate.code).toBe(0);
    expect(await next(url)).toEqual(everyTwoMinutes);

    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      const defaults = { timezone: 'UTC', catchUp: 'latest' as const, catchUpWindow: '24h', pauseAfterFailures: 0 };
      await createSchedule(pool, parseScheduleSpec({ name: 'evaluation-batch', cron: '*/2 * * * *' }, defaults), 'env');
    } finally {
      await pool.end();
    }
    const update = await runCli(
      ['schedule', 'update', 'evaluation-batch', '--cron', '30 9 * * *', '--timezone', 'Asia/Tokyo'],
      envOf(url),
    );
    expect(update.stderr).toBe('');
    expect(update.code).toBe(0);
    // 09:30 in Tokyo is 00:30 UTC.
    expect(await next(url)).toEqual([
      '2026-01-01T00:30:00.000Z',
      '2026-01-02T00:30:00.000Z',
      '2026-01-03T00:30:00.000Z',
    ]);

    const table = await runCli(['schedule', 'next', '--count', '1', '--from', from], envOf(url));
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('"30 9 * * *" in Asia/Tokyo');
    expect(table.stdout).toContain('2026-01-01T00:30:00.000Z');
  }, 180_000);
});
