// The batch workflow against a real Postgres (through DBOS) and the real simulator over HTTP. Runs are
// started directly (not by the cron) so each test controls its slot and the simulator's faults.
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { DBOS } from '@dbos-inc/dbos-sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../src/config.js';
import { EvaluationBatch, IN_PROGRESS_MESSAGE } from '../src/evaluation/evaluationBatch.js';
import { enterGate, gatesHeld } from '../src/evaluation/overlapGuard.js';
import {
  getScheduleRow,
  pauseScheduleRow,
  resumeScheduleRow,
  updateSchedule,
} from '../src/evaluation/scheduleStore.js';
import { BATCH_STATUS_EVENT, type BatchRunOutput, type BatchStatus } from '../src/evaluation/status.js';
import { createLogger } from '../src/logger.js';
import { startService, type Service } from '../src/service.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';

const TOKEN = 'tok-evaluation-secret-42';
const MAX_ATTEMPTS = 3;
/** Large enough that a missing backoff sleep shows as a gap far below the recorded delay. */
const BACKOFF_BASE_MS = 300;
let simulator: XyraSimulator;
let service: Service;
let appUrl: string;
let logText = '';
let seq = 0;

beforeAll(async () => {
  appUrl = await createTestDatabase('evaluation');
  simulator = new XyraSimulator({ token: TOKEN });
  const apiUrl = await simulator.start();
  const config = loadConfig({
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    XYRA_API_TOKEN: TOKEN,
    XYRA_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    XYRA_BACKOFF_BASE_MS: String(BACKOFF_BASE_MS),
    XYRA_BACKOFF_MAX_MS: '2000',
    XYRA_TIMEOUT_MS: '1000',
    EXECUTOR_ID: 'evaluation-test',
    LOG_LEVEL: 'debug',
  });
  const stream = new PassThrough();
  stream.on('data', (c: Buffer) => (logText += c.toString()));
  service = await startService(config, createLogger('debug', stream), { schedule: false, healthServer: false });
});

afterAll(async () => {
  await service?.stop();
  await simulator?.stop();
});

beforeEach(() => simulator.reset());

async function runBatch(): Promise<{ id: string; output: BatchRunOutput; event: BatchStatus }> {
  seq += 1;
  const id = `test-batch-${Date.now()}-${seq}`;
  const handle = await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: id })(new Date(), null);
  const output = await handle.getResult();
  const event = await DBOS.getEvent<BatchStatus>(id, BATCH_STATUS_EVENT, 5);
  if (!event) throw new Error(`no ${BATCH_STATUS_EVENT} event for ${id}`);
  return { id, output, event };
}

function callsFor(id: string) {
  return simulator.calls.filter((c) => c.idempotencyKey === id);
}

async function stepNames(id: string): Promise<string[]> {
  const steps = await DBOS.listWorkflowSteps(id);
  return (steps ?? []).map((s) => s.name);
}

describe('EvaluationBatch.trigger', () => {
  it('completes with the counts the API returned, and publishes triggered then completed', async () => {
    const { id, output, event } = await runBatch();
    const calls = callsFor(id);
    expect(calls).toHaveLength(1);
    const body = calls[0]!.body as { workflow_id: string; triggered_at: string; batch_size_limit: number };
    expect(body.workflow_id).toBe(id);
    expect(body.batch_size_limit).toBe(30);
    expect(body.triggered_at).toBe(event.scheduled_time);
    expect(calls[0]!.authorization).toBe(`Bearer ${TOKEN}`);
    expect(event.status).toBe('completed');
    expect(event.processed).toBeGreaterThan(0);
    expect(event.succeeded + event.failed).toBe(event.processed);
    expect(Date.parse(event.actual_time)).toBeGreaterThanOrEqual(Date.parse(event.scheduled_time));
    // History keeps what was sent and a summary of what came back.
    expect(output.request).toEqual(body);
    expect(output.response?.status_code).toBe(200);
    expect(output.response?.attempts).toBe(1);
    expect(output.response?.body_bytes).toBeGreaterThan(0);
    const history = await query<{ value: string }>(
      systemDatabaseUrlOf(appUrl),
      'select value from dbos.workflow_events_history where workflow_uuid = $1 and key = $2 order by function_id',
      [id, BATCH_STATUS_EVENT],
    );
    const statuses = history.map((h) => (h.value.match(/"status":"(\w+)"/) ?? [])[1]);
    expect(statuses).toEqual(['triggered', 'completed']);
  });

  it('publishes skipped with the API message on 409, without retrying', async () => {
    simulator.inject({ type: 'inProgress', count: 1 });
    const { id, event } = await runBatch();
    expect(callsFor(id)).toHaveLength(1);
    expect(event.status).toBe('skipped');
    expect(event.message).toBe(IN_PROGRESS_MESSAGE);
  });

  it('skips without calling the API while another run is in progress (overlap guard)', async () => {
    simulator.inject({ type: 'latency', ms: 600 });
    seq += 1;
    const firstId = `test-batch-slow-${Date.now()}-${seq}`;
    const first = await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: firstId })(new Date(), null);
    // Wait until the first run is calling the API.
    for (let i = 0; i < 100 && callsFor(firstId).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(callsFor(firstId)).toHaveLength(1);
    const second = await runBatch();
    expect(second.event.status).toBe('skipped');
    expect(second.event.message).toBe(IN_PROGRESS_MESSAGE);
    expect(second.output.skipped_reason).toBe('in_progress');
    expect(callsFor(second.id)).toHaveLength(0);
    const firstOut = await first.getResult();
    expect(firstOut.status.status).toBe('completed');
  });

  it('a run left triggered by a dead executor blocks nothing; by a live or adopted one, it blocks', async () => {
    // A finished run turned into what a replica that died mid-call leaves: PENDING, `triggered`, its executor gone.
    const { id: orphan } = await runBatch();
    const sys = systemDatabaseUrlOf(appUrl);
    await query(
      sys,
      `update dbos.workflow_events set value = replace(value, '"status":"completed"', '"status":"triggered"') where workflow_uuid = $1 and key = $2`,
      [orphan, BATCH_STATUS_EVENT],
    );
    await query(
      sys,
      `update dbos.workflow_status set status = 'PENDING', executor_id = 'ghost-executor' where workflow_uuid = $1`,
      [orphan],
    );
    const ghostClaim = new pg.Client({ connectionString: appUrl });
    await ghostClaim.connect();
    try {
      expect((await runBatch()).event.status).toBe('completed'); // nobody holds ghost-executor's claim

      await ghostClaim.query(
        `select pg_advisory_lock(hashtext('xyra-scheduler:executor'), hashtext('ghost-executor'))`,
      );
      const whileAlive = await runBatch();
      expect(whileAlive.output.skipped_reason).toBe('in_progress');
      expect(callsFor(whileAlive.id)).toHaveLength(0);
      await ghostClaim.query(`select pg_advisory_unlock_all()`);

      // Adopted (re-enqueued, not yet dequeued; no queue name, so no runner picks this copy up): it blocks.
      await query(sys, `update dbos.workflow_status set status = 'ENQUEUED' where workflow_uuid = $1`, [orphan]);
      expect((await runBatch()).output.skipped_reason).toBe('in_progress');
    } finally {
      await ghostClaim.end();
      await query(
        sys,
        `update dbos.workflow_status set status = 'SUCCESS', executor_id = 'evaluation-test' where workflow_uuid = $1`,
        [orphan],
      );
    }
  });

  it('a gate whose holder never publishes is released after its maximum hold (it cannot block later runs)', async () => {
    const pool = new pg.Pool({ connectionString: systemDatabaseUrlOf(appUrl), max: 2 });
    try {
      let warned = 0;
      // A holder that decided and then never got to write `triggered` (nor to release in its finally).
      expect(
        await enterGate(
          pool,
          'evaluation-batch',
          `stuck-holder-${Date.now()}`,
          async () => false,
          () => (warned += 1),
          300,
        ),
      ).toBeUndefined();
      expect(gatesHeld()).toBe(1);
      for (let i = 0; i < 100 && gatesHeld() > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(gatesHeld()).toBe(0);
      expect(warned).toBe(1);
      const { event } = await runBatch(); // takes the gate at once
      expect(event.status).toBe('completed');
    } finally {
      await pool.end();
    }
  });

  it('lets exactly one of two runs deciding at the same instant call the API', async () => {
    // Force the overlap: hold the gate ourselves until both runs are waiting on it inside their decision,
    // then let go; without the gate both would find nothing in progress and both would call the API.
    const sys = new pg.Client({ connectionString: systemDatabaseUrlOf(appUrl) });
    await sys.connect();
    try {
      await sys.query(`select pg_advisory_lock(hashtext('xyra-scheduler:batch-gate'))`);
      seq += 1;
      const ids = [`test-batch-race-a-${Date.now()}-${seq}`, `test-batch-race-b-${Date.now()}-${seq}`];
      const handles = await Promise.all(
        ids.map((id) => DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: id })(new Date(), null)),
      );
      let waiting = 0;
      for (let i = 0; i < 200 && waiting < 2; i++) {
        await new Promise((r) => setTimeout(r, 25));
        const { rows } = await sys.query<{ n: string }>(
          `select count(*) as n from pg_locks where locktype = 'advisory' and not granted
              and database = (select oid from pg_database where datname = current_database())`,
        );
        waiting = Number(rows[0]?.n);
      }
      expect(waiting).toBe(2);
      // The winner stays inside its API call until the other has decided: "in progress" must not depend on
      // how fast the winner finishes. Without the gate both would wait in their calls and neither finish.
      const release = simulator.hold();
      await sys.query(`select pg_advisory_unlock(hashtext('xyra-scheduler:batch-gate'))`);
      const decidedFirst = await Promise.race(handles.map((h) => h.getResult()));
      release();
      expect(decidedFirst.status.status).toBe('skipped');
      const outputs = await Promise.all(handles.map((h) => h.getResult()));
      const statuses = outputs.map((o) => o.status.status).sort();
      expect(statuses).toEqual(['completed', 'skipped']);
      expect(outputs.find((o) => o.status.status === 'skipped')?.skipped_reason).toBe('in_progress');
      expect(ids.map((id) => callsFor(id).length).sort()).toEqual([0, 1]);
      expect(gatesHeld()).toBe(0);
    } finally {
      await sys.end();
    }
  });

  it('skips a slot fired under the version before a pause as paused, not superseded (a pause moves the version)', async () => {
    const pool = new pg.Pool({ connectionString: appUrl, max: 2 });
    try {
      const before = await getScheduleRow(pool, 'evaluation-batch');
      expect(before?.status).toBe('ACTIVE');
      await pauseScheduleRow(pool, 'evaluation-batch', { note: 'maintenance', by: 'operator' });
      // The next slot of the default cron (every 2 minutes): after the pause took effect, fired by a replica
      // that had not heard of it yet (the version before).
      const slot = new Date(Math.ceil((Date.now() + 1) / 120_000) * 120_000);
      const id = `sched-evaluation-batch-${slot.toISOString()}`;
      const handle = await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: id })(slot, {
        schedule: 'evaluation-batch',
        version: before!.version,
      });
      const output = await handle.getResult();
      expect(output.status.status).toBe('skipped');
      expect(output.skipped_reason).toBe('paused');
      expect(callsFor(id)).toEqual([]);
    } finally {
      await resumeScheduleRow(pool, 'evaluation-batch', 'operator');
      await pool.end();
    }
  });

  it('a slot started under the version before an edit runs when the new spec has it too (with the new payload), and is superseded when not', async () => {
    const pool = new pg.Pool({ connectionString: appUrl, max: 2 });
    try {
      const before = await getScheduleRow(pool, 'evaluation-batch');
      expect(before?.cron).toBe('*/2 * * * *');
      // Slots after the edit, started (as the engine starts a herd's runs ahead of their slot) under the old
      // version: `shared` is a slot of both crons, `oldOnly` only of the old one.
      const shared = new Date(Math.ceil((Date.now() + 1) / 240_000) * 240_000 + 240_000);
      const oldOnly = new Date(shared.getTime() + 120_000);
      await updateSchedule(pool, 'evaluation-batch', { cron: '*/4 * * * *', payload: { suite: 'edited' } }, 'api');
      const start = (slot: Date) =>
        DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: `sched-evaluation-batch-${slot.toISOString()}` })(
          slot,
          {
            schedule: 'evaluation-batch',
            version: before!.version,
          },
        );
      const [a, b] = await Promise.all([start(shared), start(oldOnly)]);
      const [ran, skipped] = await Promise.all([a.getResult(), b.getResult()]);
      expect(ran.status.status).toBe('completed');
      const body = callsFor(a.workflowID)[0]?.body as { suite?: string } | undefined;
      expect(body?.suite).toBe('edited');
      expect(skipped.status.status).toBe('skipped');
      expect(skipped.skipped_reason).toBe('superseded');
      expect(callsFor(b.workflowID)).toEqual([]);
    } finally {
      await updateSchedule(pool, 'evaluation-batch', { cron: '*/2 * * * *', payload: {} }, 'api');
      await pool.end();
    }
  });

  it('a slot at or after an edit that is still committing is judged by the edit: its run waits for the commit', async () => {
    const pool = new pg.Pool({ connectionString: appUrl, max: 2 });
    const editor = new pg.Client({ connectionString: appUrl });
    await editor.connect();
    try {
      const before = await getScheduleRow(pool, 'evaluation-batch');
      // An edit in flight, as updateSchedule makes it: the row locked, the instant it takes effect read after the
      // lock; the commit comes after the next second's slot (every second in the new spec), whose run was
      // started under the version before.
      await editor.query('begin');
      await editor.query("select * from schedules where name = 'evaluation-batch' for update");
      const at = z.object({ at: z.date() }).parse((await editor.query('select clock_timestamp() as at')).rows[0]).at;
      const slot = new Date(Math.ceil((at.getTime() + 1) / 1_000) * 1_000);
      const id = `sched-evaluation-batch-${slot.toISOString()}`;
      const handle = await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: id })(slot, {
        schedule: 'evaluation-batch',
        version: before!.version,
      });
      await new Promise((r) => setTimeout(r, slot.getTime() - Date.now() + 700)); // the run is at its gate
      await editor.query(
        `update schedules set cron = '* * * * * *', payload = '{"suite":"in-flight"}', version = version + 1,
                effective_from = $1, fired_through = $1 where name = 'evaluation-batch'`,
        [at],
      );
      await editor.query('commit');
      const output = await handle.getResult();
      expect(output.status.status).toBe('completed');
      expect((callsFor(id)[0]?.body as { suite?: string } | undefined)?.suite).toBe('in-flight');
    } finally {
      await editor.query('rollback').catch(() => undefined);
      await editor.end();
      await updateSchedule(pool, 'evaluation-batch', { cron: '*/2 * * * *', payload: {} }, 'api');
      await pool.end();
    }
  });

  it('records the instant the run woke for its slot as its actual start, not when its checkpoint got the database', async () => {
    // A herd's runs queue for the system database at their slot; here the queue is a lock on DBOS's step table,
    // held from before the slot until well after it.
    const slot = new Date(Date.now() + 1_500);
    const sys = new pg.Client({ connectionString: systemDatabaseUrlOf(appUrl) });
    await sys.connect();
    try {
      const id = `sched-evaluation-batch-${slot.toISOString()}`;
      const handle = await DBOS.startWorkflow(EvaluationBatch.trigger, { workflowID: id })(slot, {
        schedule: 'evaluation-batch',
      });
      await sys.query('begin');
      await sys.query('lock table dbos.operation_outputs in access exclusive mode');
      await new Promise((r) => setTimeout(r, slot.getTime() - Date.now() + 1_000)); // the run woke 1 s ago
      await sys.query('commit');
      const output = await handle.getResult();
      const lag = Date.parse(output.status.actual_time) - slot.getTime();
      expect(lag).toBeGreaterThanOrEqual(0);
      expect(lag).toBeLessThan(500); // woke at its slot; its checkpoint waited ~1 s for the lock
    } finally {
      await sys.end();
    }
  });

  it('retries 5xx the configured number of times with the same idempotency key, then fails with the reason', async () => {
    simulator.inject({ type: 'status', status: 503, count: 10 });
    const { id, output, event } = await runBatch();
    const calls = callsFor(id);
    expect(calls).toHaveLength(MAX_ATTEMPTS);
    expect(new Set(calls.map((c) => c.idempotencyKey))).toEqual(new Set([id]));
    expect(event.status).toBe('failed');
    expect(event.error).toMatch(/503/);
    expect(event.error).toMatch(new RegExp(`${MAX_ATTEMPTS} attempts`));
    expect(output.response?.attempts).toBe(MAX_ATTEMPTS);
    const steps = await stepNames(id);
    expect(steps.filter((s) => s.endsWith('callApi'))).toHaveLength(MAX_ATTEMPTS);
    // Backoff: each delay is exponential with equal jitter (within [step/2, step], step = base·2^(n-1)),
    // recorded in the attempt's step, and really waited before the next attempt.
    const attempts = ((await DBOS.listWorkflowSteps(id)) ?? []).filter((s) => s.name.endsWith('callApi'));
    const delays = attempts.map((s) => (s.output as { nextDelayMs: number }).nextDelayMs);
    for (let n = 1; n < MAX_ATTEMPTS; n++) {
      const step = BACKOFF_BASE_MS * 2 ** (n - 1);
      expect(delays[n - 1]).toBeGreaterThanOrEqual(step / 2);
      expect(delays[n - 1]).toBeLessThanOrEqual(step);
      const gap = Date.parse(calls[n]!.at) - Date.parse(calls[n - 1]!.at);
      expect(gap, `gap before attempt ${n + 1}`).toBeGreaterThanOrEqual(delays[n - 1]! - 5);
    }
  });

  it('recovers from transient failures and keeps the idempotency key on every attempt', async () => {
    simulator.inject({ type: 'status', status: 500, count: 2 });
    const { id, event, output } = await runBatch();
    const calls = callsFor(id);
    expect(calls.map((c) => c.status)).toEqual([500, 500, 200]);
    expect(calls.every((c) => c.idempotencyKey === id)).toBe(true);
    expect(event.status).toBe('completed');
    expect(output.response?.attempts).toBe(3);
  });

  it('honours Retry-After between attempts', async () => {
    simulator.inject({ type: 'status', status: 429, count: 1, retryAfterSeconds: 1 });
    const { id, event } = await runBatch();
    const calls = callsFor(id);
    expect(calls).toHaveLength(2);
    expect(Date.parse(calls[1]!.at) - Date.parse(calls[0]!.at)).toBeGreaterThanOrEqual(950);
    expect(event.status).toBe('completed');
  });

  it.each([
    ['401 unauthorized', { type: 'unauthorized', count: 1 } as const, /401/],
    ['400 bad request', { type: 'status', status: 400, count: 1 } as const, /400/],
    ['a malformed body', { type: 'malformed', count: 1 } as const, /malformed/i],
    ['a schema-violating body', { type: 'schemaViolation', count: 1 } as const, /schema|processed/i],
  ])('fails at once, without retrying, on %s', async (_label, fault, reason) => {
    simulator.inject(fault);
    const { id, event } = await runBatch();
    expect(callsFor(id)).toHaveLength(1);
    expect(event.status).toBe('failed');
    expect(event.error).toMatch(reason);
  });

  it('treats a timeout as retryable and fails when attempts run out', async () => {
    simulator.inject({ type: 'hang', count: MAX_ATTEMPTS });
    // A hang never answers: that the batch ends at all, failed with the timeout as its reason, shows each
    // attempt was cut off by the client's timeout (no stopwatch: a loaded machine only makes it slower).
    const { id, event } = await runBatch();
    expect(callsFor(id)).toHaveLength(MAX_ATTEMPTS);
    expect(event.status).toBe('failed');
    expect(event.error).toMatch(/time/i);
  });

  it('reports 202 as triggered (the evaluation runs remotely)', async () => {
    simulator.inject({ type: 'accepted', count: 1 });
    const { id, event } = await runBatch();
    expect(callsFor(id)).toHaveLength(1);
    expect(event.status).toBe('triggered');
    expect(event.processed).toBe(0);
  });

  it('never writes the API token to logs, events or workflow outputs', async () => {
    simulator.inject({ type: 'unauthorized', count: 1 });
    const { event } = await runBatch();
    // The simulator echoed the token in its 401; what we kept of that answer has it scrubbed.
    expect(event.error).toContain('credentials rejected: Bearer [REDACTED]');
    expect(logText).toContain('credentials rejected: Bearer [REDACTED]');
    expect(logText.length).toBeGreaterThan(0);
    expect(logText).not.toContain(TOKEN);
    const leaked = await query<{ n: string }>(
      systemDatabaseUrlOf(appUrl),
      `select (select count(*) from dbos.workflow_events where value like $1)
            + (select count(*) from dbos.workflow_status where output like $1 or error like $1 or inputs like $1)
            + (select count(*) from dbos.workflow_output where output like $1)
            + (select count(*) from dbos.workflow_input where inputs like $1)
            + (select count(*) from dbos.operation_outputs where output like $1 or error like $1) as n`,
      [`%${TOKEN}%`],
    );
    expect(Number(leaked[0]!.n)).toBe(0);
  });
});
