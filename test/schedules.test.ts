// Schedules as data, end to end: two real replicas on real Postgres, the simulator's request log as the
// witness. Schedules are created, edited, paused and deleted through the CLI while fast 6-field slots fire:
// every slot runs once (on one replica) with its own payload, no slot of the old cron runs after an edit
// commits, nothing runs after a pause or delete, and each change is one audit row.
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XyraSimulator, type RecordedCall } from '../src/simulator/server.js';
import { createMigratedTestDatabase, query } from './support/database.js';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let simulator: XyraSimulator;
const services: ServiceProcess[] = [];

beforeAll(async () => {
  simulator = new XyraSimulator();
  await simulator.start();
});

afterAll(async () => {
  for (const s of services) await s.stop('SIGKILL');
  await simulator.stop();
});

interface Call {
  schedule: string;
  slot: number;
  body: Record<string, unknown>;
}

function callsOf(name: string): Call[] {
  const prefix = `sched-${name}-`;
  return simulator.calls
    .filter(
      (c: RecordedCall) =>
        c.idempotencyKey?.startsWith(prefix) && /^\d{4}-/.test(c.idempotencyKey.slice(prefix.length)),
    )
    .map((c) => ({
      schedule: name,
      slot: Date.parse(c.idempotencyKey!.slice(prefix.length)),
      body: c.body as Record<string, unknown>,
    }));
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface EventRow {
  schedule_name: string;
  kind: string;
  at: Date;
  details: {
    before: Record<string, unknown> | null;
    after: Record<string, unknown> | null;
    version: number;
    effective_from: string | null;
    by: string;
  };
}

describe('schedules as data on two replicas', () => {
  it('creates, edits, pauses and deletes while slots fire: each slot once, with its own payload, no old-cron run after an edit', async () => {
    const appUrl = await createMigratedTestDatabase('schedules');
    // The default schedule fires once a year: the witness log holds only the schedules made here.
    const base = { DATABASE_URL: appUrl, XYRA_API_URL: simulator.url, BATCH_CRON: '0 0 1 1 *' };
    const env = base;
    services.push(startServiceProcess({ ...base, EXECUTOR_ID: 'sched-r1' }));
    await services[0]!.waitForLog(isReady, READY_TIMEOUT_MS);
    services.push(startServiceProcess({ ...base, EXECUTOR_ID: 'sched-r2' }));
    await services[1]!.waitForLog(isReady, READY_TIMEOUT_MS);

    const created = await runCli(
      ['schedule', 'create', 'fast', '--cron', '*/2 * * * * *', '--payload', '{"suite":"fast"}', '--json'],
      env,
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({
      name: 'fast',
      version: 1,
      managed_by: 'cli',
      payload: { suite: 'fast' },
      status: 'ACTIVE',
    });
    const other = await runCli(
      [
        'schedule',
        'create',
        'other',
        '--cron',
        '1-59/2 * * * * *',
        '--payload',
        '{"suite":"other","batch_size_limit":7}',
      ],
      env,
    );
    expect(other.code).toBe(0);
    // An existing name: exit 1, nothing changed.
    const again = await runCli(['schedule', 'create', 'fast', '--cron', '* * * * * *'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);

    await until(
      () => callsOf('fast').length >= 3 && callsOf('other').length >= 3,
      30_000,
      'three runs of each schedule',
    );

    const updated = await runCli(
      ['schedule', 'update', 'fast', '--cron', '*/3 * * * * *', '--payload', '{"suite":"fast2"}', '--json'],
      env,
    );
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ version: 2, cron: '*/3 * * * * *' });
    const [edit] = await query<EventRow>(
      appUrl,
      `select * from schedule_events where schedule_name = 'fast' and kind = 'updated'`,
    );
    const effectiveFrom = Date.parse(edit!.details.effective_from!);
    await until(
      () => callsOf('fast').filter((c) => c.slot > effectiveFrom).length >= 3,
      30_000,
      'three runs of the new cron',
    );

    const paused = await runCli(['schedule', 'pause', '--schedule', 'other', '--note', 'vendor window'], env);
    expect(paused.code).toBe(0);
    const [pause] = await query<EventRow>(
      appUrl,
      `select * from schedule_events where schedule_name = 'other' and kind = 'paused'`,
    );
    const deleted = await runCli(['schedule', 'delete', 'fast'], env);
    expect(deleted.code).toBe(0);
    const [del] = await query<EventRow>(
      appUrl,
      `select * from schedule_events where schedule_name = 'fast' and kind = 'deleted'`,
    );
    await sleep(5_000); // several slots of both would have fired by now
    for (const s of services) await s.stop('SIGTERM');

    // Each slot called once (the idempotency key is the slot's workflow ID), across both replicas.
    const keys = simulator.calls.map((c) => c.idempotencyKey);
    expect(new Set(keys).size).toBe(keys.length);

    const fast = callsOf('fast');
    const before = fast.filter((c) => c.slot < effectiveFrom);
    const after = fast.filter((c) => c.slot >= effectiveFrom);
    expect(before.length).toBeGreaterThanOrEqual(3);
    expect(after.length).toBeGreaterThanOrEqual(3);
    // Old spec: even seconds, its payload; new spec: multiples of 3 s, its payload. No old-cron run after the edit.
    for (const c of before) {
      expect(c.body).toMatchObject({ suite: 'fast', batch_size_limit: 30 });
      expect((c.slot / 1000) % 2).toBe(0);
    }
    for (const c of after) {
      expect(c.body).toMatchObject({ suite: 'fast2', batch_size_limit: 30 });
      expect((c.slot / 1000) % 3).toBe(0);
    }
    // Consecutive slots of each version, each with one outcome on record: none missing between the first and the
    // last seen. Outcomes, not calls: on a loaded machine a slot may rightly be skipped (the run before it still in
    // progress, or started too late for its catch-up policy), and a skip is its one outcome.
    const history = await runCli(['history', '--schedule', 'fast', '--json', '--limit', '1000'], env);
    expect(history.code).toBe(0);
    const runs = z
      .array(z.object({ workflow_id: z.string(), scheduled_time: z.string(), status: z.string() }))
      .parse(JSON.parse(history.stdout));
    const runSlots = runs.map((r) => Date.parse(r.scheduled_time));
    expect(new Set(runSlots).size).toBe(runSlots.length);
    for (const c of fast)
      expect(runs.map((r) => r.workflow_id)).toContain(`sched-fast-${new Date(c.slot).toISOString()}`);
    const gaps = (slots: number[], step: number) => {
      const sorted = [...slots].sort((a, b) => a - b);
      return sorted.slice(1).filter((s, i) => s - sorted[i]! !== step);
    };
    expect(
      gaps(
        runSlots.filter((t) => t < effectiveFrom),
        2000,
      ),
    ).toEqual([]);
    // After the edit: every slot of the new cron, one after another. An old-cron slot there has a run only when one
    // was started ahead of the edit (or by a replica that had not heard of it yet), skipped as superseded.
    expect(
      gaps(
        runSlots.filter((t) => t >= effectiveFrom && t % 3000 === 0),
        3000,
      ),
    ).toEqual([]);
    expect(
      runs
        .filter((r) => Date.parse(r.scheduled_time) >= effectiveFrom && Date.parse(r.scheduled_time) % 3000 !== 0)
        .filter((r) => r.status !== 'skipped'),
    ).toEqual([]);
    // Nothing after a delete or a pause.
    expect(fast.filter((c) => c.slot > del!.at.getTime())).toEqual([]);
    const others = callsOf('other');
    expect(others.filter((c) => c.slot > pause!.at.getTime())).toEqual([]);
    for (const c of others) expect(c.body).toMatchObject({ suite: 'other', batch_size_limit: 7 });

    // One audit row per change, with before/after, version, effective_from and who.
    const events = await query<EventRow>(
      appUrl,
      `select * from schedule_events where schedule_name in ('fast', 'other') order by id`,
    );
    expect(events.map((e) => `${e.schedule_name}:${e.kind}:${e.details.version}:${e.details.by}`)).toEqual([
      'fast:created:1:cli',
      'other:created:1:cli',
      'fast:updated:2:cli',
      'other:paused:2:operator',
      'fast:deleted:2:cli',
    ]);
    expect(edit!.details.before).toMatchObject({ cron: '*/2 * * * * *', payload: { suite: 'fast' } });
    expect(edit!.details.after).toMatchObject({ cron: '*/3 * * * * *', payload: { suite: 'fast2' } });
    expect(del!.details.after).toBeNull();
    // The runs stay in the history after the delete (read above, after it).
    expect(runs.length).toBeGreaterThanOrEqual(before.length + after.length);
  }, 180_000);
});
