// Precise firing: wake exactly at each slot of the CronSchedule and hand it to `fire`. Every replica runs
// one; they all start the same workflow ID, so one run per slot (see firing.ts). The clock is injected so
// tests drive the same loop across daylight-saving changes without waiting for them.

import type { CronSchedule } from './cron.js';

export interface Clock {
  now(): number;
  /** Resolves at `atMs` (not before), or early when `signal` aborts. */
  sleepUntil(atMs: number, signal: AbortSignal): Promise<void>;
}

/** Node's timers cannot sleep past ~24.8 days; sleep in chunks and re-check the clock. */
const MAX_TIMER_MS = 3_600_000;

export const systemClock: Clock = {
  now: () => Date.now(),
  async sleepUntil(atMs, signal) {
    while (!signal.aborted) {
      const left = atMs - Date.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, MAX_TIMER_MS));
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done, { once: true });
      });
    }
  },
};

export interface SlotFirerOptions<P = void> {
  schedule: CronSchedule;
  /**
   * Runs `leadMs` before the slot (e.g. reading whether the schedule is paused), so the work at the slot
   * itself is only the start of the run. Its result is handed to `fire`.
   */
  prepare?(slot: Date): Promise<P>;
  leadMs?: number;
  /**
   * Fire this long before the slot (default 0). The run it starts waits for the slot itself; starting early
   * means the run's row exists before DBOS's own firing looks for it, so DBOS never enqueues it first.
   */
  fireLeadMs?: number;
  fire(slot: Date, prepared: P | undefined): Promise<void>;
  /** Called with each slot the loop starts waiting for (the next-slot metric). */
  onNext?(slot: Date): void;
  clock?: Clock;
  /** Called when `fire` throws; the loop goes on with the next slot (DBOS's own loop is the fallback). */
  onError?(slot: Date, error: unknown): void;
}

export class SlotFirer<P = void> {
  private readonly controller = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly options: SlotFirerOptions<P>) {}

  /** Fires every slot strictly after the clock's current time (earlier ones are DBOS's backfill). */
  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { schedule, fire, onError, prepare, onNext } = this.options;
    const fireLeadMs = this.options.fireLeadMs ?? 0;
    const leadMs = prepare ? Math.max(this.options.leadMs ?? 0, fireLeadMs) : 0;
    const clock = this.options.clock ?? systemClock;
    const signal = this.controller.signal;
    let last = new Date(clock.now());
    while (!signal.aborted) {
      const slot = schedule.next(last);
      onNext?.(slot);
      let prepared: Promise<P> | undefined;
      if (prepare) {
        await clock.sleepUntil(slot.getTime() - leadMs, signal);
        if (signal.aborted) break;
        prepared = prepare(slot);
        prepared.catch(() => undefined); // awaited (and reported) below
      }
      await clock.sleepUntil(slot.getTime() - fireLeadMs, signal);
      if (signal.aborted) break;
      try {
        await fire(slot, prepared === undefined ? undefined : await prepared);
      } catch (e) {
        onError?.(slot, e);
      }
      last = slot;
    }
  }
}
