// Pins the queue-runner half of src/runtime/dbosInternals.ts against the DBOS version we run: the private
// per-queue state and the runner's static intervals it reaches are where it expects them, so the adaptive
// polling of the tasks queue (fast while chunks run, slow while idle) and the slower queue upkeep really take
// effect. If an SDK upgrade moves them, these answer false and this test goes red instead of the pipeline
// silently falling back to its idle polling rate.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { TASKS_QUEUE } from '../src/pipeline/taskPipeline.js';
import { DBOS } from '@dbos-inc/dbos-sdk';
import {
  applyQueueRegistrationNow,
  setQueueMaintenanceInterval,
  wakeQueueRunner,
} from '../src/runtime/dbosInternals.js';
import { startService, type Service } from '../src/service.js';
import { wfQueueRunner } from '@dbos-inc/dbos-sdk/internal/wfqueue';
import { createTestDatabase } from './support/database.js';

let service: Service;

beforeAll(async () => {
  const appUrl = await createTestDatabase('queueinternals');
  const config = loadConfig({
    DATABASE_URL: appUrl,
    EXECUTOR_ID: 'queue-internals',
    PIPELINE_POLL_MS: '800',
    BATCH_QUEUE_POLL_MS: '60000',
    SHUTDOWN_TIMEOUT_MS: '2000',
  });
  service = await startService(config, createLogger('warn'), { schedule: false, healthServer: false });
});

afterAll(async () => {
  await service?.stop();
});

type RunnerStates = Map<
  string,
  { currentPollingMs: number; nextPollAt: number; queue: { minPollingIntervalMs: number } }
>;
const runnerStates = () => (wfQueueRunner as unknown as { states: RunnerStates }).states;

it('a queue registered after launch is polled at once, not at the runner’s next reconcile', async () => {
  // The service registered the tasks queue at start-up (after launch): the runner tracks it already, where its
  // own reconcile (every 5 s) would have added it only later.
  expect(runnerStates().get(TASKS_QUEUE)?.queue.minPollingIntervalMs).toBe(800);
  const queue = await DBOS.registerQueue('registered-after-launch', { minPollingIntervalMs: 700 });
  expect(runnerStates().has('registered-after-launch')).toBe(false); // DBOS alone: only at the next reconcile
  const before = Date.now();
  expect(applyQueueRegistrationNow(queue)).toBe(true);
  const state = runnerStates().get('registered-after-launch');
  expect(state?.queue.minPollingIntervalMs).toBe(700);
  expect(state?.nextPollAt).toBeGreaterThanOrEqual(before + 700);
  expect(state?.nextPollAt).toBeLessThanOrEqual(Date.now() + 700);
});

it('a re-registered queue’s new interval replaces the runner’s copy and its next poll at once', async () => {
  const fast = await DBOS.registerQueue(TASKS_QUEUE, { minPollingIntervalMs: 50, onConflict: 'always_update' });
  expect(applyQueueRegistrationNow(fast)).toBe(true);
  const state = runnerStates().get(TASKS_QUEUE);
  expect(state?.currentPollingMs).toBe(50);
  expect(state?.queue.minPollingIntervalMs).toBe(50);
  expect(state?.nextPollAt).toBeLessThanOrEqual(Date.now() + 50);
  const slow = await DBOS.registerQueue(TASKS_QUEUE, { minPollingIntervalMs: 800, onConflict: 'always_update' });
  expect(applyQueueRegistrationNow(slow)).toBe(true);
  expect(runnerStates().get(TASKS_QUEUE)?.queue.minPollingIntervalMs).toBe(800);
});

it('reaches the runner’s upkeep intervals', () => {
  const runner = wfQueueRunner.constructor as unknown as { reconcileIntervalMs: number; transitionIntervalMs: number };
  expect(setQueueMaintenanceInterval(5_000)).toBe(true);
  expect(runner.reconcileIntervalMs).toBe(5_000);
  expect(runner.transitionIntervalMs).toBe(5_000);
});

it('a faster interval polls the queue at once, waking the runner from a long sleep', async () => {
  // Every queue (DBOS's internal one too) and the upkeep at a minute: the runner's loop sleeps for up to a minute.
  const slow = await DBOS.registerQueue(TASKS_QUEUE, { minPollingIntervalMs: 60_000, onConflict: 'always_update' });
  expect(applyQueueRegistrationNow(slow)).toBe(true);
  expect(setQueueMaintenanceInterval(60_000)).toBe(true);
  const saved = new Map<string, number>();
  for (const [name, state] of runnerStates()) {
    saved.set(name, state.queue.minPollingIntervalMs);
    state.queue.minPollingIntervalMs = 60_000;
    state.currentPollingMs = 60_000;
    state.nextPollAt = Date.now() + 60_000;
  }
  try {
    expect(wakeQueueRunner()).toBe(true); // the loop takes the minute in
    await new Promise((r) => setTimeout(r, 300));
    const fast = await DBOS.registerQueue(TASKS_QUEUE, { minPollingIntervalMs: 50, onConflict: 'always_update' });
    expect(applyQueueRegistrationNow(fast)).toBe(true);
    const asked = runnerStates().get(TASKS_QUEUE)?.nextPollAt ?? Infinity; // due now
    // A poll ends by scheduling the next one an interval after it: nextPollAt moves past the one we set.
    const deadline = Date.now() + 10_000;
    while ((runnerStates().get(TASKS_QUEUE)?.nextPollAt ?? 0) <= asked && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(runnerStates().get(TASKS_QUEUE)?.nextPollAt).toBeGreaterThan(asked);
  } finally {
    setQueueMaintenanceInterval(5_000);
    for (const [name, state] of runnerStates()) {
      const ms = saved.get(name) ?? 1_000;
      state.queue.minPollingIntervalMs = ms;
      state.currentPollingMs = ms;
      state.nextPollAt = Date.now();
    }
    const back = await DBOS.registerQueue(TASKS_QUEUE, { minPollingIntervalMs: 800, onConflict: 'always_update' });
    applyQueueRegistrationNow(back);
    wakeQueueRunner();
  }
});
