// The schedule's cron, read in its time zone: the one place that answers "when are the slots?". Firing,
// catch-up, `xyra schedule next`, `schedule status`, stats and the dashboard all ask here, so what is listed
// is what fires.
//
// NOTE: this first version delegates to DBOS's matcher (via the internals adapter). Its daylight-saving
// behaviour is DBOS's (a fixed-time slot fires twice in autumn, never in spring); the firing engine replaces
// it with cron(8) semantics behind this same interface.
import { TimeMatcher } from '../runtime/dbosInternals.js';

export class CronSchedule {
  private readonly matcher: TimeMatcher;

  constructor(
    readonly expression: string,
    readonly timeZone: string = 'UTC',
  ) {
    this.matcher = new TimeMatcher(expression, timeZone);
  }

  /** The first slot strictly after `after`. */
  next(after: Date): Date {
    let cursor = after.getTime();
    for (;;) {
      const candidate = this.matcher.nextWakeupTime(cursor);
      if (this.matcher.match(candidate)) return candidate;
      cursor = candidate.getTime();
    }
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

  /** True when `at` is one of the schedule's slots. */
  isSlot(at: Date): boolean {
    return this.next(new Date(at.getTime() - 1)).getTime() === at.getTime();
  }
}
