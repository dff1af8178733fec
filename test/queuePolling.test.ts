// The tasks queue's speed follows the backlog the database reports: fast from the first check when work is
// waiting (a fresh process needs no hint), re-read while fast, slow again once the queue is empty; idle, it
// reads nothing until poked. A stand-in backlog function, fake timers: nothing waits on a clock.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DispatchSpeed } from '../src/pipeline/queuePolling.js';

afterEach(() => {
  vi.useRealTimers();
});

function control(backlog: { waiting: boolean; reads: number }, applied: number[]) {
  return new DispatchSpeed({
    idleMs: 800,
    busyMs: 50,
    recheckMs: 2_000,
    hasBacklog: async () => {
      backlog.reads++;
      return backlog.waiting;
    },
    apply: async (ms) => void applied.push(ms),
  });
}

describe('DispatchSpeed', () => {
  it('starts fast when the database already holds a backlog, and slows down once it is drained', async () => {
    vi.useFakeTimers();
    const backlog = { waiting: true, reads: 0 };
    const applied: number[] = [];
    const speed = control(backlog, applied);
    await speed.check();
    expect(applied).toEqual([50]);
    speed.poke(); // already fast: no extra read
    expect(backlog.reads).toBe(1);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(backlog.reads).toBe(2);
    expect(applied).toEqual([50]);
    backlog.waiting = false;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(applied).toEqual([50, 800]);
    await vi.advanceTimersByTimeAsync(60_000); // idle: no reads of its own
    expect(backlog.reads).toBe(3);
    speed.stop();
  });

  it('starts slow without a backlog and goes fast when poked while work waits', async () => {
    const backlog = { waiting: false, reads: 0 };
    const applied: number[] = [];
    const speed = control(backlog, applied);
    await speed.check();
    expect(applied).toEqual([800]);
    backlog.waiting = true;
    speed.poke();
    await speed.check();
    expect(applied).toEqual([800, 50]);
    speed.stop();
  });

  it('never polls fast when the idle interval is already the fast one', async () => {
    const applied: number[] = [];
    const speed = new DispatchSpeed({
      idleMs: 50,
      busyMs: 50,
      recheckMs: 2_000,
      hasBacklog: async () => true,
      apply: async (ms) => void applied.push(ms),
    });
    await speed.check();
    expect(applied).toEqual([50]);
    speed.stop();
  });
});
