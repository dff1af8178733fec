// The service as operators run it: real processes (dist/src/main.js) on a real Postgres, the simulator
// over HTTP, a fast cron. Restarts, SIGKILL and two replicas on one database.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CronSchedule } from '../src/evaluation/cron.js';
import { DEFAULT_SKIP_MESSAGE } from '../src/evaluation/xyraClient.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createMigratedTestDatabase, createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { eventStatuses } from './support/batchRuns.js';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

const TOKEN = 'tok-service-secret-7731';
let simulator: XyraSimulator;
const running: ServiceProcess[] = [];

beforeAll(async () => {
  simulator = new XyraSimulator({ token: TOKEN });
  await simulator.start();
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  await simulator.stop();
});

function start(env: Record<string, string>): ServiceProcess {
  const p = startServiceProcess({
    XYRA_API_URL: simulator.url,
    XYRA_API_TOKEN: TOKEN,
    XYRA_BACKOFF_BASE_MS: '50',
    ...env,
  });
  running.push(p);
  return p;
}

interface SlotRow {
  workflow_uuid: string;
  status: string;
  executor_id: string;
  event: { status: string; message?: string; scheduled_time: string; actual_time: string } | null;
}

/** Every batch run in the system database, oldest slot first, with its latest event. */
async function slots(appUrl: string): Promise<SlotRow[]> {
  const rows = await query<{ workflow_uuid: string; status: string; executor_id: string; value: string | null }>(
    systemDatabaseUrlOf(appUrl),
    `select s.workflow_uuid, s.status, s.executor_id, e.value
       from dbos.workflow_status s
       left join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid and e.key = 'batch_evaluation_status'
      where s.name = 'trigger' and s.workflow_uuid like 'sched-evaluation-batch-%'
      order by s.workflow_uuid`,
  );
  return rows.map((r) => ({ ...r, event: r.value ? (JSON.parse(r.value) as { json: SlotRow['event'] }).json : null }));
}

const completedBatch = (l: { msg?: string }) => l.msg === 'batch completed';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('configuration errors', () => {
  it.each([
    ['BATCH_CRON', 'every two minutes'],
    ['XYRA_MAX_ATTEMPTS', 'lots'],
    ['DATABASE_URL', 'mysql://localhost/db'],
  ])('%s=%s exits 2 with one line naming the variable, starting nothing', async (variable, value) => {
    const p = startServiceProcess({ [variable]: value });
    const { code } = await p.exited;
    expect(code).toBe(2);
    const lines = p.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(variable);
  });
});

describe('service processes', () => {
  it('fails start-up clearly (exit 1, stopping what it started) when PORT is taken', async () => {
    const appUrl = await createTestDatabase('porttaken');
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '0.0.0.0', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const p = startServiceProcess({
        DATABASE_URL: appUrl,
        XYRA_API_URL: simulator.url,
        PORT: String(port),
        EXECUTOR_ID: 'port-1',
      });
      const { code } = await p.exited;
      expect(code).toBe(1);
      const fatal = p.logs.find((l) => l.level === 'fatal');
      expect(fatal?.msg).toBe(`start-up failed: PORT ${port} is already in use: set PORT to a free port (0 picks one)`);
    } finally {
      blocker.close();
    }
  });

  it('starts, reports health and readiness, runs slots, and exits 0 on SIGTERM', async () => {
    const appUrl = await createTestDatabase('health');
    const p = start({ DATABASE_URL: appUrl, BATCH_CRON: '*/2 * * * * *', EXECUTOR_ID: 'health-1' });
    const ready = await p.waitForLog(isReady, READY_TIMEOUT_MS);
    const port = Number(ready.healthPort);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const readyz = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.json()).toMatchObject({ status: 'ready', appDatabase: true, systemDatabase: true });
    await p.waitForLog(completedBatch, 15_000);
    // One answer that echoes the token (the simulator's 401 does): it must still never be printed.
    simulator.inject({ type: 'unauthorized', count: 1 });
    const failed = await p.waitForLog((l) => l.msg === 'batch failed', 15_000);
    expect(String(failed.error)).toContain('credentials rejected: Bearer [REDACTED]');
    expect(await p.stop('SIGTERM')).toBe(0);
    // Secrets: neither the API token nor the database password is ever printed.
    const password = new URL(appUrl).password;
    expect(p.output()).not.toContain(TOKEN);
    if (password) expect(p.output()).not.toContain(password);
  });

  it('drains on the first signal and exits at once on a second', async () => {
    const appUrl = await createMigratedTestDatabase('twosignals');
    simulator.reset();
    simulator.inject({ type: 'hang', count: 1 });
    const p = start({
      DATABASE_URL: appUrl,
      BATCH_CRON: '*/2 * * * * *',
      EXECUTOR_ID: 'signals-1',
      XYRA_TIMEOUT_MS: '60000',
      SHUTDOWN_TIMEOUT_MS: '60000',
    });
    await p.waitForLog(isReady, READY_TIMEOUT_MS);
    for (let i = 0; i < 200 && simulator.calls.length === 0; i++) await sleep(50);
    expect(simulator.calls).toHaveLength(1); // a run is now in flight, waiting on the API
    p.child.kill('SIGTERM');
    await p.waitForLog((l) => l.msg === 'draining: waiting for in-flight workflows', 10_000);
    // The drain would wait up to 60 s for the hung call and then exit 0: 130 means the second signal cut it short.
    p.child.kill('SIGTERM');
    const { code } = await p.exited;
    expect(code).toBe(130);
    expect(p.logs.some((l) => l.msg === 'second signal: exiting at once')).toBe(true);
  });

  it('runs each slot exactly once with two replicas on one database', async () => {
    const appUrl = await createTestDatabase('replicas');
    const cron = '*/2 * * * * *';
    const env = { DATABASE_URL: appUrl, BATCH_CRON: cron };
    const a = start({ ...env, EXECUTOR_ID: 'replica-a' });
    const b = start({ ...env, EXECUTOR_ID: 'replica-b' });
    await Promise.all([a.waitForLog(isReady, READY_TIMEOUT_MS), b.waitForLog(isReady, READY_TIMEOUT_MS)]);
    simulator.reset();
    const windowStart = new Date(Date.now() + 1_000); // slots from here on fire after the reset
    await sleep(10_000);
    const windowEnd = new Date(Date.now() - 2_500); // margin: jitter + queue poll + the API call
    // Let the window's last slot finish before stopping.
    await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);

    const expected = new CronSchedule(cron)
      .slotsBetween(windowStart, windowEnd)
      .map((d) => `sched-evaluation-batch-${d.toISOString()}`);
    expect(expected.length).toBeGreaterThanOrEqual(3);
    const rows = await slots(appUrl);
    const callsByKey = new Map<string, number>();
    for (const c of simulator.calls)
      callsByKey.set(c.idempotencyKey ?? '(none)', (callsByKey.get(c.idempotencyKey ?? '(none)') ?? 0) + 1);
    // Each slot one run, by one replica. It completes with one API call, or, on a loaded machine where the run
    // before it is still calling the API 2 s later, the overlap policy skips it without a call (one outcome too).
    let completed = 0;
    for (const id of expected) {
      const runs = rows.filter((r) => r.workflow_uuid === id);
      expect(runs, id).toHaveLength(1);
      const event = runs[0]!.event;
      if (event?.status === 'skipped') {
        expect(event.message, id).toBe(DEFAULT_SKIP_MESSAGE); // the overlap guard's words (IN_PROGRESS_MESSAGE)
        expect(callsByKey.get(id) ?? 0, id).toBe(0);
        continue;
      }
      expect(event?.status, id).toBe('completed');
      expect(callsByKey.get(id) ?? 0, id).toBe(1);
      completed += 1;
    }
    expect(completed).toBeGreaterThanOrEqual(expected.length - 1);
    // Nothing anywhere was called twice.
    expect([...callsByKey].filter(([, n]) => n !== 1)).toEqual([]);
    expect(rows.every((r) => r.executor_id === 'replica-a' || r.executor_id === 'replica-b')).toBe(true);
  });

  it('resumes a run killed (SIGKILL) in the middle of the API call, ending with exactly one final status', async () => {
    const appUrl = await createMigratedTestDatabase('sigkill');
    const env = {
      DATABASE_URL: appUrl,
      BATCH_CRON: '*/3 * * * * *',
      EXECUTOR_ID: 'killed-1',
      XYRA_TIMEOUT_MS: '30000',
    };
    simulator.reset();
    simulator.inject({ type: 'hang', count: 1 });
    const first = start(env);
    await first.waitForLog(isReady, READY_TIMEOUT_MS);
    for (let i = 0; i < 200 && simulator.calls.length === 0; i++) await sleep(50);
    const hung = simulator.calls[0]?.idempotencyKey;
    expect(hung).toMatch(/^sched-evaluation-batch-/);
    first.child.kill('SIGKILL');
    await first.exited;

    const second = start(env);
    await second.waitForLog(isReady, READY_TIMEOUT_MS);
    await second.waitForLog((l) => l.msg === 'batch completed' && l.workflowId === hung, 20_000);
    await second.stop('SIGTERM');

    expect(await eventStatuses(appUrl, hung!)).toEqual(['triggered', 'completed']);
    const attempts = simulator.calls.filter((c) => c.idempotencyKey === hung);
    expect(attempts.length).toBe(2); // the interrupted attempt and the resumed one, same idempotency key
    const row = (await slots(appUrl)).find((r) => r.workflow_uuid === hung);
    expect(row?.status).toBe('SUCCESS');
  });

  it.each([
    [
      'latest',
      (older: SlotRow[], newest: SlotRow) => {
        // Every missed slot but the newest is skipped as missed (no API call); the newest runs.
        for (const r of older) {
          expect(r.event?.status).toBe('skipped');
          expect(r.event?.message).toMatch(/Missed slot/);
        }
        expect(newest.event?.status).toBe('completed');
      },
    ],
    [
      'all',
      (older: SlotRow[], newest: SlotRow) => {
        for (const r of older) expect(r.event?.status).toBe('completed');
        expect(newest.event?.status).toBe('completed');
      },
    ],
    [
      'none',
      (older: SlotRow[], newest: SlotRow) => {
        // The newest missed slot starts less than half an interval late or not, depending on start-up time:
        // it only has to have an outcome (checked for every slot below).
        for (const r of older) {
          expect(r.event?.status).toBe('skipped');
          expect(r.event?.message).toMatch(/Missed slot/);
        }
        expect(['completed', 'skipped']).toContain(newest.event?.status);
      },
    ],
  ])('after downtime applies catch-up policy %s to the missed slots', async (policy, check) => {
    const cron = '*/5 * * * * *';
    const appUrl = await createMigratedTestDatabase(`catchup_${policy}`);
    const env = { DATABASE_URL: appUrl, BATCH_CRON: cron, EXECUTOR_ID: `catchup-${policy}`, BATCH_CATCH_UP: policy };
    const first = start(env);
    await first.waitForLog(completedBatch, 60_000);
    await first.stop('SIGTERM');
    const downAt = Date.now();
    await sleep(6_000);
    // Restart just after a slot: the newest missed slot's successor is then a whole interval (5 s) away,
    // enough for start-up on a loaded machine, so under "latest" it is the newest missed slot that runs.
    await sleep(5_000 - (Date.now() % 5_000) + 50);
    const second = start(env);
    const ready = await second.waitForLog(isReady, READY_TIMEOUT_MS);
    // Every slot of the downtime, from the cron itself (not from the runs found): none may be missing. The
    // downtime ends when the new process started (what catch-up decides on), not when the test spawned it: on a
    // loaded machine a slot can fall between the two, and it is then the newest missed slot.
    const upAt = Date.parse(String(ready.upSince));
    expect(Number.isNaN(upAt)).toBe(false);
    const missed = new CronSchedule(cron).slotsBetween(new Date(downAt), new Date(upAt));
    expect(missed.length).toBeGreaterThanOrEqual(2);
    const ids = missed.map((slot) => `sched-evaluation-batch-${slot.toISOString()}`);
    // Wait (bounded) until each missed slot has a final outcome: under "all" they run one after another.
    const finished = (r: SlotRow | undefined) => r?.event && r.event.status !== 'triggered' && r.status !== 'PENDING';
    let rows = new Map<string, SlotRow>();
    for (let i = 0; i < 100; i++) {
      rows = new Map((await slots(appUrl)).map((r) => [r.workflow_uuid, r]));
      if (ids.every((id) => finished(rows.get(id)))) break;
      await sleep(250);
    }
    await second.stop('SIGTERM');
    const gap = ids.map((id) => rows.get(id));
    expect(gap.map((r) => r?.event?.status ?? 'no run')).not.toContain('no run');
    expect(gap.map((r) => r?.event?.status)).not.toContain('triggered');
    const present = gap as SlotRow[];
    check(present.slice(0, -1), present[present.length - 1]!);
  });
});

describe('xyra CLI reaches the same database', () => {
  it('rejects a bad environment with exit 2 as the service does', async () => {
    const r = await runCli(['migrate'], { BATCH_SIZE_LIMIT: 'many' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('BATCH_SIZE_LIMIT');
  });
});
