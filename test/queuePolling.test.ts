// Adaptive polling of the tasks queue: one switch to fast polling when chunks start, one switch back after
// the cool-down without chunks (fake timers: no waiting, nothing timed).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AdaptivePolling } from '../src/pipeline/queuePolling.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('AdaptivePolling', () => {
  it('polls fast while chunks keep starting and slow again after the cool-down', async () => {
    vi.useFakeTimers();
    const applied: number[] = [];
    const polling = new AdaptivePolling({ idleMs: 800, busyMs: 50, coolDownMs: 10_000, apply: async (ms) => void applied.push(ms) });
    polling.noteActivity();
    vi.advanceTimersByTime(9_000);
    polling.noteActivity(); // still busy: no second write, cool-down restarts
    vi.advanceTimersByTime(9_000);
    expect(applied).toEqual([50]);
    vi.advanceTimersByTime(1_001);
    expect(applied).toEqual([50, 800]);
    polling.noteActivity();
    expect(applied).toEqual([50, 800, 50]);
    polling.stop();
  });

  it('never switches when the idle interval is already the fast one', () => {
    const applied: number[] = [];
    const polling = new AdaptivePolling({ idleMs: 50, busyMs: 50, coolDownMs: 10_000, apply: async (ms) => void applied.push(ms) });
    polling.noteActivity();
    polling.stop();
    expect(applied).toEqual([]);
  });
});
