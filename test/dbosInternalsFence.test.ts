// Pins the DBOS internals the execution fence relies on (src/runtime/dbosInternals.ts), against a real
// Postgres: a step sees its execution's owner token (the one in workflow_status), a takeover's new token makes
// `executionOwnsWorkflow` false and DBOS itself refuses the stale execution's next step; the retry backoff
// setting is the one DBOS reads; the log lines we demote are the ones DBOS writes.
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import { DBOS } from '@dbos-inc/dbos-sdk';
import pg from 'pg';
import { dbRetryConfig } from '@dbos-inc/dbos-sdk/internal/utils';
import { workflowTimeoutConfig } from '@dbos-inc/dbos-sdk/internal/workflow_management';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import {
  currentExecution,
  DBOS_CONNECTION_NOISE,
  DBOS_SLOT_START_RACE,
  executionOwnsWorkflow,
  setDeadlineSweepInterval,
  setDbRetryMaxBackoff,
} from '../src/runtime/dbosInternals.js';
import { startService, type Service } from '../src/service.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';

const seen: Array<{ workflowId: string; ownerXid: string } | undefined> = [];
let release: () => void = () => undefined;
let secondStepRan = false;
let secondStepError: unknown;

class FenceProbe {
  @DBOS.workflow()
  static async run(): Promise<string> {
    await FenceProbe.look();
    await new Promise<void>((r) => (release = r)); // the test changes the owner token meanwhile
    try {
      await FenceProbe.second();
    } catch (e) {
      secondStepError = e;
      throw e;
    }
    return 'done';
  }

  @DBOS.step()
  static async look(): Promise<void> {
    seen.push(currentExecution());
  }

  @DBOS.step()
  static async second(): Promise<void> {
    secondStepRan = true;
  }
}

let service: Service;
let sys: string;
let pool: pg.Pool;

beforeAll(async () => {
  const appUrl = await createTestDatabase('internals_fence');
  sys = systemDatabaseUrlOf(appUrl);
  pool = new pg.Pool({ connectionString: sys, max: 1 });
  const config = loadConfig({
    DATABASE_URL: appUrl,
    XYRA_API_URL: 'http://127.0.0.1:9',
    EXECUTOR_ID: 'internals-fence',
  });
  service = await startService(config, createLogger('info', new PassThrough()), {
    schedule: false,
    healthServer: false,
  });
});

afterAll(async () => {
  await pool?.end();
  await service?.stop();
});

describe('the execution behind a step (currentOwnerXid) and its ownership', () => {
  it('a step sees the owner token DBOS stored; a takeover token makes it stale and DBOS refuses its next step', async () => {
    const id = `fence-probe-${Date.now()}`;
    await DBOS.startWorkflow(FenceProbe, { workflowID: id }).run();
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    const execution = seen[0];
    expect(execution?.workflowId).toBe(id);
    const [row] = await query<{ owner_xid: string }>(
      sys,
      'select owner_xid from dbos.workflow_status where workflow_uuid = $1',
      [id],
    );
    expect(execution?.ownerXid).toBe(row?.owner_xid);
    expect(await executionOwnsWorkflow(pool, id, execution!.ownerXid)).toBe(true);
    expect(await executionOwnsWorkflow(pool, id, 'not-the-token')).toBe(false);

    // What a takeover does: the row gets another owner (recovery, then another runner's dequeue).
    await query(sys, `update dbos.workflow_status set owner_xid = 'adopter-token' where workflow_uuid = $1`, [id]);
    expect(await executionOwnsWorkflow(pool, id, execution!.ownerXid)).toBe(false);
    release();
    for (let i = 0; i < 200 && secondStepError === undefined; i++) await new Promise((r) => setTimeout(r, 50));
    expect(String((secondStepError as Error | undefined)?.message)).toBe(
      `Workflow ${id} is no longer owned by this execution`,
    ); // DBOSWorkflowConflictError
    const steps = await query<{ function_name: string }>(
      sys,
      'select function_name from dbos.operation_outputs where workflow_uuid = $1 order by function_id',
      [id],
    );
    expect(steps.map((s) => s.function_name)).toEqual(['look']); // the stale execution recorded nothing more
    expect(secondStepRan).toBe(true); // DBOS refuses only the record: why the fence must refuse the step itself
    expect(currentExecution()).toBeUndefined(); // outside a workflow
  });
});

describe('DBOS retry settings and log lines', () => {
  it('setDbRetryMaxBackoff changes what DBOS reads on each retry', () => {
    const before = dbRetryConfig.maxBackoffSec;
    expect(setDbRetryMaxBackoff(3)).toBe(true);
    expect(dbRetryConfig.maxBackoffSec).toBe(3);
    setDbRetryMaxBackoff(before);
  });

  it("setDeadlineSweepInterval changes the interval DBOS's deadline sweep waits between sweeps", async () => {
    const before = workflowTimeoutConfig.pollingIntervalMs;
    expect(before).toBeGreaterThan(0);
    expect(setDeadlineSweepInterval(4_321)).toBe(true);
    expect(workflowTimeoutConfig.pollingIntervalMs).toBe(4_321);
    // The sweep reads the field before each wait (so a change made before launch is the interval from the start).
    const require = createRequire(import.meta.url);
    const source = await fs.readFile(require.resolve('@dbos-inc/dbos-sdk/internal/workflow_management'), 'utf8');
    expect(source).toContain('await waitOrAbort(exports.workflowTimeoutConfig.pollingIntervalMs, signal)');
    setDeadlineSweepInterval(before);
  });

  it('the connection-noise lines we demote are the ones DBOS 5.3 writes', async () => {
    const require = createRequire(import.meta.url);
    const source = await fs.readFile(require.resolve('@dbos-inc/dbos-sdk/internal/system_database'), 'utf8');
    expect(source).toContain('`Database connection failed: ${');
    expect(source).toContain('Unexpected error in pool: ');
    expect(source).toContain('Unexpected error on a system database connection: ');
    expect(
      DBOS_CONNECTION_NOISE.test('Database connection failed: connect ECONNREFUSED. Retrying in 1.2s (attempt 3)'),
    ).toBe(true);
    expect(DBOS_CONNECTION_NOISE.test('Unexpected error in pool: error: terminating connection')).toBe(true);
    expect(
      DBOS_CONNECTION_NOISE.test(
        'Unexpected error on a system database connection: Error: Connection terminated unexpectedly',
      ),
    ).toBe(true);
    expect(DBOS_CONNECTION_NOISE.test('Workflow X failed')).toBe(false);
  });

  it("the slot-start race line we demote is the one DBOS 5.3 writes (a slot's second start)", async () => {
    const require = createRequire(import.meta.url);
    const source = await fs.readFile(require.resolve('@dbos-inc/dbos-sdk/internal/system_database'), 'utf8');
    expect(source).toContain(
      'already exists in queue: ${resRow.queue_name}, but the provided queue name is: ${initStatus.queueName}. The queue is not updated.',
    );
    const line = (id: string) =>
      `Workflow (${id}) already exists in queue: evaluation-batch, but the provided queue name is: undefined. The queue is not updated. Error\n    at ...`;
    expect(DBOS_SLOT_START_RACE.test(line('sched-nightly-2026-12-06T14:28:00.000Z'))).toBe(true);
    expect(DBOS_SLOT_START_RACE.test(line('task-chunk-7'))).toBe(false); // only our slot runs
  });
});
