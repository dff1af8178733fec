// The schedule's cron, read in its time zone: the one place that answers "when are the slots?". Firing,
// catch-up, `xyra schedule next`, `schedule status`, stats and the dashboard all ask here, so what is listed
// is what fires.
//
// Daylight saving follows cron(8) (Vixie cron / cronie):
// - A *fixed-time* cron (neither its minute nor its hour field starts with `*`, e.g. `30 2 * * *`) runs
//   exactly once per local day: a wall time skipped by the spring change runs at the first instant after
//   the gap (the change itself), a wall time repeated by the autumn change runs at its first occurrence only.
// - A *wildcard* cron (minute or hour starts with `*`, e.g. `*/30 * * * *`, `0 * * * *`) follows the wall
//   clock: skipped wall times do not exist, repeated ones run twice, so it keeps its real-time rhythm.
// DBOS's own matcher differs (it fires a fixed-time slot twice in autumn and never in spring); our firing
// engine and each run's gate use this module, so these rules win (docs/design.md, "Daylight saving").
import { cronFields, cronMatcher, type WallClockMatcher } from './cronExpression.js';

const HOUR_MS = 3_600_000;
/** No zone ever moved its offset by 3 h or more at once; the search margin around a change. */
const MAX_SHIFT_MS = 3 * HOUR_MS;

/** True when the cron's minute or hour field starts with `*`: it follows the wall clock through a change. */
export function isWildcardCron(expression: string): boolean {
  const fields = cronFields(expression);
  const [minute, hour] = fields.length === 6 ? fields.slice(1, 3) : fields.slice(0, 2);
  return (minute ?? '').startsWith('*') || (hour ?? '').startsWith('*');
}

/** Offsets of one zone, with a cached formatter (constructing Intl formatters is slow). */
class ZoneOffsets {
  private readonly format: Intl.DateTimeFormat;

  constructor(readonly timeZone: string) {
    // Throws RangeError for an unknown zone.
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** Local minus UTC, in ms, at the instant `ms` (whole seconds). */
  at(ms: number): number {
    const p: Record<string, number> = {};
    for (const part of this.format.formatToParts(ms)) if (part.type !== 'literal') p[part.type] = Number(part.value);
    const wall = Date.UTC(p.year!, p.month! - 1, p.day, p.hour! % 24, p.minute, p.second);
    return wall - Math.floor(ms / 1000) * 1000;
  }

  /** The first instant in (lo, hi] whose offset differs from the offset at `lo` (a change lies in there). */
  changeBetween(lo: number, hi: number): number {
    const before = this.at(lo);
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if (this.at(mid) === before) lo = mid;
      else hi = mid;
    }
    return hi;
  }
}

export class CronSchedule {
  private readonly wall: WallClockMatcher;
  private readonly zone: ZoneOffsets | null;
  /** Fixed-time crons run once per local day through a change; wildcard ones follow the wall clock. */
  readonly wildcard: boolean;

  constructor(
    readonly expression: string,
    readonly timeZone: string = 'UTC',
  ) {
    this.wall = cronMatcher(expression);
    this.zone = timeZone === 'UTC' || timeZone === 'Etc/UTC' ? null : new ZoneOffsets(timeZone);
    this.wildcard = isWildcardCron(expression);
  }

  /** The first slot strictly after `after`. Throws when the cron can never fire (e.g. `0 0 30 2 *`). */
  next(after: Date): Date {
    const afterMs = after.getTime();
    if (!this.zone) return new Date(this.nextWall(afterMs));
    const zone = this.zone;
    const offsetAfter = zone.at(afterMs);
    // A wall time earlier than `after`'s own can still map to a later instant when the clock falls back
    // within the next hours: start the walk before it then.
    const fallsBackSoon = zone.at(afterMs + MAX_SHIFT_MS) < offsetAfter;
    let cursor = afterMs + offsetAfter - (fallsBackSoon ? MAX_SHIFT_MS : 1);
    let best = Infinity;
    for (;;) {
      const wall = this.nextWall(cursor);
      // Wall times ascend; once one can only map past `best` (by any offset seen), nothing earlier is left.
      if (best !== Infinity && wall - Math.max(offsetAfter, zone.at(best), zone.at(best + MAX_SHIFT_MS)) > best) break;
      for (const instant of this.instantsOf(wall)) {
        if (instant > afterMs && instant < best) best = instant;
      }
      cursor = wall;
    }
    return new Date(best);
  }

  /** The next `count` slots strictly after `after`. */
  nextSlots(after: Date, count: number): Date[] {
    const out: Date[] = [];
    let cursor = after;
    while (out.length < count) {
      cursor = this.next(cursor);
      out.push(cursor);
    }
    return out;
  }

  /** Slots in [from, to), at most `limit` of them (oldest first). */
  slotsBetween(from: Date, to: Date, limit = Number.MAX_SAFE_INTEGER): Date[] {
    const out: Date[] = [];
    let cursor = new Date(from.getTime() - 1);
    while (out.length < limit) {
      cursor = this.next(cursor);
      if (cursor.getTime() >= to.getTime()) break;
      out.push(cursor);
    }
    return out;
  }

  /** The number of slots in [from, to), and the first and last of them. */
  countBetween(from: Date, to: Date): { count: number; first: Date | null; last: Date | null } {
    let count = 0;
    let first: Date | null = null;
    let last: Date | null = null;
    let cursor = new Date(from.getTime() - 1);
    for (;;) {
      cursor = this.next(cursor);
      if (cursor.getTime() >= to.getTime()) break;
      count += 1;
      first ??= cursor;
      last = cursor;
    }
    return { count, first, last };
  }

  /** True when `at` is one of the schedule's slots (as this module, not DBOS's matcher, defines them). */
  isSlot(at: Date): boolean {
    return this.next(new Date(at.getTime() - 1)).getTime() === at.getTime();
  }

  private nextWall(wallMs: number): number {
    const next = this.wall.nextWallTime(wallMs);
    if (next === null) throw new Error(`cron "${this.expression}" never fires`);
    return next;
  }

  /** The instants at which the wall time `wall` fires, under the daylight-saving rules above. */
  private instantsOf(wall: number): number[] {
    const zone = this.zone!;
    // The offsets on either side of any change near this wall time.
    const candidates = new Set([zone.at(wall - 36 * HOUR_MS), zone.at(wall), zone.at(wall + 36 * HOUR_MS)]);
    const instants = [...candidates]
      .map((offset) => ({ offset, instant: wall - offset }))
      .filter(({ offset, instant }) => zone.at(instant) === offset)
      .map(({ instant }) => instant)
      .sort((a, b) => a - b);
    const unique = instants.filter((v, i) => i === 0 || v !== instants[i - 1]);
    if (this.wildcard) return unique;
    if (unique.length > 0) return [unique[0]!]; // autumn: the first occurrence only
    // Spring gap: this wall time does not exist; run at the change (the first instant after the gap).
    const offsets = [...candidates].sort((a, b) => a - b);
    const lo = wall - offsets[offsets.length - 1]!;
    const hi = wall - offsets[0]!;
    return [zone.changeBetween(lo, hi)];
  }
}
