// The failure policy's decision is taken once even when several runs reach the threshold at the same moment
// (two replicas finishing failed runs together): twelve concurrent decisions over the same streak record one
// pause. In-process service (real Postgres through DBOS), failed runs made against an API answering 500.
import { PassThrough } from 'node:stream';
import { DBOS } from '@dbos-inc/dbos-sdk';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { EvaluationBatch } from '../src/evaluation/evaluationBatch.js';
import { applyFailurePolicy, configureFailurePolicy } from '../src/evaluation/failurePolicy.js';
import { consecutiveFailures } from '../src/evaluation/failureStreak.js';
import type { BatchStatus } from '../src/evaluation/status.js';
import { createLogger } from '../src/logger.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createTestDatabase, query } from './support/database.js';
import { startInProcessService, type InProcessService } from './support/inProcessService.js';

const simulator = new XyraSimulator();
let running: InProcessService | undefined;
let appUrl: string;
let appPool: pg.Pool;
let systemPool: pg.Pool;

beforeAll(async () => {
  const apiUrl = await simulator.start();
  simulator.inject({ type: 'status', status: 500, count: 10_000 });
  appUrl = await createTestDatabase('failpolicylock');
  const config = loadConfig({
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    XYRA_MAX_ATTEMPTS: '1',
    BATCH_CRON: '0 0 1 1 *', // the schedule exists but does not fire during the test
    BATCH_PAUSE_AFTER_FAILURES: '0',
    EXECUTOR_ID: 'failpolicy-lock',
  });
  running = await startInProcessService(config, { poolSize: 16 });
  ({ appPool, systemPool } = running);
}, 180_000);

afterAll(async () => {
  await running?.stop();
  await simulator.stop();
});

it('twelve decisions at once over a streak at the threshold pause once, with one record', async () => {
  // Three failed runs on record, one after another (the policy is off while they run).
  for (let i = 0; i < 3; i++) {
    const handle = await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: `lock-run-${i}` })(new Date(), null);
    expect((await handle.getResult()).status.status).toBe('failed');
  }
  expect(await consecutiveFailures(systemPool, appPool, 'evaluation-batch')).toBe(3);

  configureFailurePolicy({ systemPool, appPool, logger: createLogger('warn', new PassThrough()) });
  await query(appUrl, `update schedules set pause_after_failures = 3 where name = 'evaluation-batch'`);
  const failed = (i: number): BatchStatus => ({
    workflow_id: `lock-decision-${i}`,
    status: 'failed',
    processed: 0,
    succeeded: 0,
    failed: 0,
    scheduled_time: new Date().toISOString(),
    actual_time: new Date().toISOString(),
    error: 'HTTP 500',
  });
  const verdicts = await Promise.all(
    Array.from({ length: 12 }, (_, i) => applyFailurePolicy('evaluation-batch', failed(i))),
  );
  expect(verdicts.filter((v) => v.paused)).toHaveLength(1);
  expect(verdicts.map((v) => v.consecutiveFailures)).toEqual(Array(12).fill(3));
  const paused = await query(appUrl, `select details from schedule_events where kind = 'paused'`);
  expect(paused).toHaveLength(1);
  const [sched] = await query<{ status: string }>(
    appUrl,
    `select status from schedules where name = 'evaluation-batch'`,
  );
  expect(sched!.status).toBe('PAUSED');
}, 180_000);
