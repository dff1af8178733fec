// The system clock's sleepUntil (src/evaluation/clock.ts), which a slot's run waits on: it never resolves before
// its instant. A Node timer may fire a millisecond before Date.now() reaches the time it was set for (about 2 in
// 1,000 short timers here), and a run that woke then recorded an actual start 1 ms before its slot.
import { expect, it } from 'vitest';
import { systemClock } from '../src/evaluation/clock.js';

it('never resolves before the instant it was asked for', async () => {
  const signal = new AbortController().signal;
  const early: number[] = [];
  for (let i = 0; i < 2_000; i++) {
    const at = Date.now() + 1;
    await systemClock.sleepUntil(at, signal);
    const now = Date.now();
    if (now < at) early.push(at - now);
  }
  expect(early).toEqual([]);
});

it('resolves at once when aborted', async () => {
  const controller = new AbortController();
  const sleeping = systemClock.sleepUntil(Date.now() + 60_000, controller.signal);
  controller.abort();
  await sleeping; // would hold the test for a minute otherwise (the test's timeout is shorter)
  expect(controller.signal.aborted).toBe(true);
}, 5_000);
