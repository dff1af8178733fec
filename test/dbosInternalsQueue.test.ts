// Pins the queue-runner half of src/runtime/dbosInternals.ts against the DBOS version we run: the private
// per-queue state and the runner's static intervals it reaches are where it expects them, so the adaptive
// polling of the tasks queue (fast while chunks run, slow while idle) and the slower queue upkeep really take
// effect. If an SDK upgrade moves them, these answer false and this test goes red instead of the pipeline
// silently falling back to its idle polling rate.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { TASKS_QUEUE } from '../src/pipeline/taskPipeline.js';
import { pollQueueFasterNow, setQueueMaintenanceInterval } from '../src/runtime/dbosInternals.js';
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
    SHUTDOWN_TIMEOUT_MS: '2000',
  });
  service = await startService(config, createLogger('warn'), { schedule: false, healthServer: false });
});

afterAll(async () => {
  await service?.stop();
});

it('lowers the tasks queue’s next poll and its in-memory minimum at once', async () => {
  const states = (
    wfQueueRunner as unknown as {
      states: Map<string, { currentPollingMs: number; queue: { minPollingIntervalMs: number } }>;
    }
  ).states;
  // A queue registered after launch joins the runner at its next reconcile (every 5 s here).
  for (let i = 0; i < 100 && !states.get(TASKS_QUEUE); i++) await new Promise((r) => setTimeout(r, 100));
  expect(states.get(TASKS_QUEUE)?.queue.minPollingIntervalMs).toBe(800);
  expect(pollQueueFasterNow(TASKS_QUEUE, 50)).toBe(true);
  expect(states.get(TASKS_QUEUE)?.currentPollingMs).toBe(50);
  expect(states.get(TASKS_QUEUE)?.queue.minPollingIntervalMs).toBe(50);
  expect(pollQueueFasterNow('no-such-queue', 50)).toBe(false);
});

it('reaches the runner’s upkeep intervals', () => {
  const runner = wfQueueRunner.constructor as unknown as { reconcileIntervalMs: number; transitionIntervalMs: number };
  expect(setQueueMaintenanceInterval(5_000)).toBe(true);
  expect(runner.reconcileIntervalMs).toBe(5_000);
  expect(runner.transitionIntervalMs).toBe(5_000);
});
