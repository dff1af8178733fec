// Pins what failover relies on in DBOS internals (src/runtime/dbosInternals.ts), against a real Postgres:
// recovering another executor's workflows re-enqueues exactly its PENDING ones of our application version
// (a directly-started one onto DBOS's internal queue, a queued one onto its own queue), a live runner then
// executes each once under our executor ID, and a second recovery finds nothing.
import { PassThrough } from 'node:stream';
import { DBOS } from '@dbos-inc/dbos-sdk';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import {
  DBOS_INTERNAL_QUEUE,
  deleteDbosSchedule,
  readDbosSchedule,
  recoverExecutorWorkflows,
} from '../src/runtime/dbosInternals.js';
import { startService, type Service } from '../src/service.js';
import { VERSION } from '../src/version.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';

const EXECUTOR = 'internals-test';
const QUEUE = 'internals-probe';
const executions: string[] = [];

class RecoveryProbe {
  @DBOS.workflow()
  static async run(tag: string): Promise<string> {
    await RecoveryProbe.touch(tag);
    return tag;
  }

  @DBOS.step()
  static async touch(tag: string): Promise<void> {
    executions.push(tag);
  }
}

/** A workflow DBOS's own scheduler fires (the upgrade take-over reads what DBOS records of it). */
class ScheduleProbe {
  @DBOS.workflow()
  static async tick(at: Date, context: unknown): Promise<void> {
    void at;
    void context;
    await Promise.resolve();
  }
}

let service: Service;
let sys: string;
let appUrl: string;
let logText = '';

beforeAll(async () => {
  appUrl = await createTestDatabase('internals');
  sys = systemDatabaseUrlOf(appUrl);
  const config = loadConfig({ DATABASE_URL: appUrl, XYRA_API_URL: 'http://127.0.0.1:9', EXECUTOR_ID: EXECUTOR });
  const logs = new PassThrough();
  logs.on('data', (c: Buffer) => (logText += c.toString()));
  service = await startService(config, createLogger('info', logs), { schedule: false, healthServer: false });
  await DBOS.registerQueue(QUEUE, { concurrency: 2 });
});

afterAll(async () => {
  await service?.stop();
});

describe('recoverExecutorWorkflows (DBOSExecutor.recoverPendingWorkflows)', () => {
  it('re-enqueues only the dead executor’s PENDING workflows of our version; each then runs once here', async () => {
    const stamp = Date.now();
    const direct = `probe-direct-${stamp}`;
    const queued = `probe-queued-${stamp}`;
    const otherVersion = `probe-other-${stamp}`;
    const finished = `probe-finished-${stamp}`;
    await (await DBOS.startWorkflow(RecoveryProbe, { workflowID: direct }).run(direct)).getResult();
    await (await DBOS.startWorkflow(RecoveryProbe, { workflowID: queued, queueName: QUEUE }).run(queued)).getResult();
    await (await DBOS.startWorkflow(RecoveryProbe, { workflowID: otherVersion }).run(otherVersion)).getResult();
    await (await DBOS.startWorkflow(RecoveryProbe, { workflowID: finished }).run(finished)).getResult();
    // Leave three of them as a dead executor "ghost" leaves them (PENDING, nothing recorded after start),
    // one at another application version; the fourth finished on "ghost".
    const ids = [direct, queued, otherVersion];
    await query(sys, `delete from dbos.operation_outputs where workflow_uuid = any($1)`, [ids]);
    await query(
      sys,
      `update dbos.workflow_status set status = 'PENDING', executor_id = 'ghost' where workflow_uuid = any($1)`,
      [ids],
    );
    await query(sys, `update dbos.workflow_status set executor_id = 'ghost' where workflow_uuid = $1`, [finished]);
    await query(
      sys,
      `update dbos.workflow_status set application_version = 'another-version' where workflow_uuid = $1`,
      [otherVersion],
    );
    executions.length = 0;

    const recovered = await recoverExecutorWorkflows('ghost');
    expect([...recovered].sort()).toEqual([direct, queued].sort());
    await Promise.all(recovered.map((id) => DBOS.retrieveWorkflow(id).getResult()));

    expect([...executions].sort()).toEqual([direct, queued].sort());
    const rows = await query<{
      workflow_uuid: string;
      status: string;
      executor_id: string;
      queue_name: string | null;
      application_version: string;
    }>(
      sys,
      `select workflow_uuid, status, executor_id, queue_name, application_version from dbos.workflow_status where workflow_uuid = any($1) order by 1`,
      [[...ids, finished]],
    );
    const byId = new Map(rows.map((r) => [r.workflow_uuid, r]));
    expect(byId.get(direct)).toMatchObject({
      status: 'SUCCESS',
      executor_id: EXECUTOR,
      queue_name: DBOS_INTERNAL_QUEUE,
      application_version: VERSION,
    });
    expect(byId.get(queued)).toMatchObject({ status: 'SUCCESS', executor_id: EXECUTOR, queue_name: QUEUE });
    expect(byId.get(otherVersion)).toMatchObject({
      status: 'PENDING',
      executor_id: 'ghost',
      application_version: 'another-version',
    });
    expect(byId.get(finished)).toMatchObject({ status: 'SUCCESS', executor_id: 'ghost' });

    // Recovering the same executor again (a second replica, or the dead ID coming back) runs nothing twice.
    expect(await recoverExecutorWorkflows('ghost')).toEqual([]);
    expect(await recoverExecutorWorkflows(EXECUTOR)).toEqual([]);
    expect(executions).toHaveLength(2);
  });
});

describe('failover takeover through the adapter (this process is the live replica)', () => {
  it('adopts a dead executor’s work of our version, logs it, and logs the other version’s work it leaves', async () => {
    const stamp = Date.now();
    const mine = `probe-dead-mine-${stamp}`;
    const theirs = `probe-dead-theirs-${stamp}`;
    for (const id of [mine, theirs])
      await (await DBOS.startWorkflow(RecoveryProbe, { workflowID: id }).run(id)).getResult();
    await query(sys, `delete from dbos.operation_outputs where workflow_uuid = any($1)`, [[mine, theirs]]);
    await query(
      sys,
      `update dbos.workflow_status set status = 'PENDING', executor_id = 'dead-replica' where workflow_uuid = any($1)`,
      [[mine, theirs]],
    );
    await query(sys, `update dbos.workflow_status set application_version = 'older-version' where workflow_uuid = $1`, [
      theirs,
    ]);
    // Its claim row: free (nobody holds the lock) and first seen free a minute ago (> FAILOVER_AFTER, 30 s).
    await query(
      appUrl,
      `insert into executor_claims (executor_id, application_version, heartbeat_at, free_since)
       values ('dead-replica', $1, now() - interval '2 minutes', now() - interval '1 minute')`,
      [VERSION],
    );
    executions.length = 0;
    for (let i = 0; i < 100 && !logText.includes('not taken over'); i++) await new Promise((r) => setTimeout(r, 100));
    await DBOS.retrieveWorkflow(mine).getResult();

    expect(logText).toContain('failover: took over 1 unfinished workflow(s) of executor dead-replica');
    expect(logText).toContain(`${mine}`);
    expect(logText).toContain(
      `failover: 1 unfinished workflow(s) of executor dead-replica are of application version older-version, not ours (${VERSION}): not taken over`,
    );
    expect(executions).toEqual([mine]);
    const [theirsRow] = await query<{ status: string; executor_id: string }>(
      sys,
      'select status, executor_id from dbos.workflow_status where workflow_uuid = $1',
      [theirs],
    );
    expect(theirsRow).toEqual({ status: 'PENDING', executor_id: 'dead-replica' });
    const [claim] = await query<{ generation: string; adopted_by: string; adopted_at: Date | null }>(
      appUrl,
      `select generation, adopted_by, adopted_at from executor_claims where executor_id = 'dead-replica'`,
    );
    expect(claim).toMatchObject({ generation: '2', adopted_by: EXECUTOR, adopted_at: null }); // left open for a replica of that version
    // Later beats adopt nothing more and do not repeat the log.
    await new Promise((r) => setTimeout(r, 4_500));
    expect(logText.split('took over').length - 1).toBe(1);
    expect(logText.split('not taken over').length - 1).toBe(1);
    await query(sys, `update dbos.workflow_status set status = 'CANCELLED' where workflow_uuid = $1`, [theirs]);
  });
});

describe("DBOS's schedule rows, as the upgrade take-over reads them (readDbosSchedule, deleteDbosSchedule)", () => {
  it('reads the cron, zone, status and the last slot DBOS fired; deletes the row so DBOS forgets it', async () => {
    const name = 'legacy-probe';
    const sysPool = new pg.Pool({ connectionString: sys, max: 2 });
    onTestFinished(() => sysPool.end());
    expect(await readDbosSchedule(sysPool, name)).toBeNull();
    await DBOS.createSchedule({
      scheduleName: name,
      workflowFn: ScheduleProbe.tick,
      schedule: '* * * * * *',
      options: { cronTimezone: 'America/New_York' },
    });
    // DBOS's scheduler picks it up at its next poll and fires every second.
    const deadline = Date.now() + 60_000;
    let fired: Awaited<ReturnType<typeof readDbosSchedule>> = null;
    while (Date.now() < deadline) {
      fired = await readDbosSchedule(sysPool, name);
      if (fired?.lastFiredAt) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(fired).toMatchObject({ cron: '* * * * * *', timezone: 'America/New_York', status: 'ACTIVE' });
    // The last fired slot is the slot of a run DBOS enqueued under its slot ID.
    const slot = fired!.lastFiredAt!;
    expect(slot.getMilliseconds()).toBe(0);
    const runs = await query(sys, `select 1 from dbos.workflow_status where workflow_uuid = $1`, [
      `sched-${name}-${slot.toISOString()}`,
    ]);
    expect(runs).toHaveLength(1);

    await DBOS.pauseSchedule(name);
    expect((await readDbosSchedule(sysPool, name))?.status).toBe('PAUSED');
    expect(await deleteDbosSchedule(sysPool, name)).toBe(true);
    expect(await DBOS.getSchedule(name)).toBeNull();
    expect(await readDbosSchedule(sysPool, name)).toBeNull();
    expect(await deleteDbosSchedule(sysPool, name)).toBe(false);
  }, 90_000);
});
