// The engine's clock: the system's, or one a test injects to drive the same loop across daylight-saving
// changes without waiting for them.

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
