// Differential test of our cron(8) reading (src/evaluation/cronExpression.ts via CronSchedule) against an
// independent implementation: croner (npm), whose default mode ORs day-of-month and day-of-week when both are
// restricted, as cron(8) does. Seeded random expressions with steps, ranges, lists, names, `7`, seconds and
// both day fields restricted must list the same next slots in UTC.
//
// Intended divergences (not generated at random; each pinned below with cron(8)'s answer):
// - a day field written `*/N` (or `*-…`): cron(8) calls any field starting with `*` unrestricted, so the
//   other day field decides alone (AND); croner treats only a bare `*` as unrestricted and ORs.
// - `N/STEP` (a number before the step): cronie reads it as `N-max/STEP`, we do too; croner refuses it.
import { Cron } from 'croner';
import { describe, expect, it } from 'vitest';
import { CronSchedule } from '../src/evaluation/cron.js';
import { CronSyntaxError, parseCron } from '../src/evaluation/cronExpression.js';

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

function generator(seed: number) {
  const rnd = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));

  function atom(min: number, max: number, name?: (v: number) => string): string {
    const v = () => {
      const n = int(min, max);
      return name && rnd() < 0.4 ? name(n) : String(n);
    };
    switch (int(0, 3)) {
      case 0:
        return v();
      case 1: {
        const a = int(min, max);
        const b = int(a, max);
        return `${a}-${b}`;
      }
      case 2: {
        const a = int(min, max);
        const b = int(a, max);
        return `${a}-${b}/${int(1, Math.max(1, Math.floor((max - min) / 2)))}`;
      }
      default:
        return v();
    }
  }

  /** A restricted field: one atom or a list of 2-3. */
  function restricted(min: number, max: number, name?: (v: number) => string): string {
    const n = rnd() < 0.35 ? int(2, 3) : 1;
    return Array.from({ length: n }, () => atom(min, max, name)).join(',');
  }

  function timeField(min: number, max: number): string {
    const r = rnd();
    if (r < 0.25) return '*';
    if (r < 0.5) return `*/${int(1, Math.floor(max / 2) + 1)}`;
    return restricted(min, max);
  }

  return function expression(): string {
    const seconds = rnd() < 0.3 ? `${timeField(0, 59)} ` : '';
    const minute = timeField(0, 59);
    const hour = timeField(0, 23);
    // Both day fields restricted in most expressions: the rule this test is about.
    const both = rnd() < 0.7;
    const dom = both || rnd() < 0.5 ? restricted(1, 31) : '*';
    const month = rnd() < 0.6 ? '*' : restricted(1, 12, (m) => MONTHS[m - 1]!);
    const dow = both || dom === '*' ? restricted(0, 7, (d) => DAYS[d % 7]!) : '*';
    return `${seconds}${minute} ${hour} ${dom} ${month} ${dow}`;
  };
}

const iso = (ds: Date[]) => ds.map((d) => d.toISOString());

function ours(expr: string, from: Date, n: number): string[] {
  return iso(new CronSchedule(expr, 'UTC').nextSlots(from, n));
}

function theirs(expr: string, from: Date, n: number): string[] {
  return iso(
    new Cron(expr, { timezone: 'UTC', mode: expr.trim().split(/\s+/).length === 6 ? '6-part' : '5-part' }).nextRuns(
      n,
      from,
    ),
  );
}

describe('cron(8) reading against croner', () => {
  it('agrees on the next 8 slots of 300 seeded random expressions (both day fields restricted in most)', () => {
    const next = generator(20261202);
    const rnd = mulberry32(7);
    let compared = 0;
    let bothRestricted = 0;
    const disagreements: string[] = [];
    while (compared < 300) {
      const expr = next();
      try {
        parseCron(expr);
      } catch (e) {
        if (e instanceof CronSyntaxError && /never fires/.test(e.message)) continue;
        throw e;
      }
      const from = new Date(Date.UTC(2026, 0, 1) + Math.floor(rnd() * 365 * 86_400) * 1000);
      const a = ours(expr, from, 8);
      const b = theirs(expr, from, 8);
      if (JSON.stringify(a) !== JSON.stringify(b))
        disagreements.push(`${expr} from ${from.toISOString()}: ours ${a[0]}… croner ${b[0]}…`);
      const f = expr.split(' ');
      const [dom, dow] = f.length === 6 ? [f[3]!, f[5]!] : [f[2]!, f[4]!];
      if (dom !== '*' && dow !== '*') bothRestricted += 1;
      compared += 1;
    }
    expect(disagreements).toEqual([]);
    expect(bothRestricted).toBeGreaterThan(150);
  });

  it('runs on the 1st, the 15th and every Monday for `0 0 1,15 * 1` (issue 14)', () => {
    const slots = ours('0 0 1,15 * 1', new Date('2026-01-01T00:00:00Z'), 6);
    expect(slots).toEqual([
      '2026-01-05T00:00:00.000Z',
      '2026-01-12T00:00:00.000Z',
      '2026-01-15T00:00:00.000Z',
      '2026-01-19T00:00:00.000Z',
      '2026-01-26T00:00:00.000Z',
      '2026-02-01T00:00:00.000Z',
    ]);
    expect(theirs('0 0 1,15 * 1', new Date('2026-01-01T00:00:00Z'), 6)).toEqual(slots);
  });

  it('reads names, 7 = Sunday and nicknames like croner', () => {
    const from = new Date('2026-03-10T12:34:56Z');
    for (const expr of [
      '0 9 * JAN-MAR MON-FRI',
      '0 0 * * 7',
      '0 0 * * SUN',
      '15 10 1 * sat,7',
      '@hourly',
      '@daily',
      '@weekly',
      '@monthly',
      '@yearly',
    ]) {
      expect(ours(expr, from, 5), expr).toEqual(theirs(expr, from, 5));
    }
  });

  it('intended divergence: a day field starting with `*` is unrestricted (cron(8)), croner ORs `*/2`', () => {
    // cron(8): odd days of the month that are also Mondays. 2026-01: Mondays 5, 12, 19, 26 → none odd but 5, 19.
    expect(ours('0 0 */2 * 1', new Date('2026-01-01T00:00:00Z'), 2)).toEqual([
      '2026-01-05T00:00:00.000Z',
      '2026-01-19T00:00:00.000Z',
    ]);
    expect(theirs('0 0 */2 * 1', new Date('2026-01-01T00:00:00Z'), 2)).not.toEqual([
      '2026-01-05T00:00:00.000Z',
      '2026-01-19T00:00:00.000Z',
    ]);
  });

  it('refuses what cron(8) refuses: backwards ranges, out-of-range values, wrong field counts', () => {
    for (const bad of [
      '0 5-2 * * *',
      '0 0 * * 8',
      '60 * * * *',
      '0 0 32 * *',
      '* * * *',
      '0 0 1 * * * *',
      '@reboot',
      '0 0 ? * L',
      'x * * * *',
    ]) {
      expect(() => parseCron(bad), bad).toThrow(CronSyntaxError);
    }
    expect(() => new Cron('0 5-2 * * *')).toThrow(); // the reference refuses it too
  });
});
