// A Postgres outage longer than FAILOVER_AFTER under real service processes, on a private cluster this file
// stops and starts (the project's embedded Postgres): the replicas stay up and fenced (/healthz 200, /readyz
// 503), call and write nothing while fenced, and afterwards every slot has one run, the run that was in
// flight finishes once and the ingest that was in flight accounts for every record.
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CronSchedule } from '../src/evaluation/cron.js';
import { writeDataset } from '../src/pipeline/generator.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { query, systemDatabaseUrlOf } from './support/database.js';
import { startPrivatePostgres, type PrivatePostgres } from './support/privatePostgres.js';
import { FAILOVER_AFTER_MS, replicaFixture, sleep, tookOver } from './support/replicas.js';
import { isReady, READY_TIMEOUT_MS, runCli, type LogLine, type ServiceProcess } from './support/serviceProcess.js';
import { rowCounts, serviceEnv, summarySchema, tempDir } from './pipelineSupport.js';
import { startTcpProxy } from './support/tcpProxy.js';

const { simulator, start } = replicaFixture();
let cluster: PrivatePostgres;
let databases = 0;

beforeAll(async () => {
  cluster = await startPrivatePostgres();
}, 120_000);
afterAll(async () => {
  await cluster?.destroy();
});

const CRON = '*/2 * * * * *';
/** Longer than FAILOVER_AFTER (3 s): the old rule exited after FAILOVER_AFTER / 2. */
const OUTAGE_MS = 3 * FAILOVER_AFTER_MS;

const unreachable = (l: LogLine) => typeof l.msg === 'string' && l.msg.startsWith('database unreachable');
const reachable = (l: LogLine) => typeof l.msg === 'string' && l.msg.startsWith('database reachable again');

async function http(port: number, p: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function readyPort(p: ServiceProcess): Promise<number> {
  return Number((await p.waitForLog(isReady, READY_TIMEOUT_MS)).healthPort);
}

interface Run {
  id: string;
  wf: string;
  status: string;
}

async function batchRuns(appUrl: string): Promise<Run[]> {
  const rows = await query<{ workflow_uuid: string; status: string; value: string | null }>(
    systemDatabaseUrlOf(appUrl),
    `select s.workflow_uuid, s.status, e.value from dbos.workflow_status s
       left join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid and e.key = 'batch_evaluation_status'
      where s.workflow_uuid like 'sched-evaluation-batch-%' order by 1`,
  );
  return rows.map((r) => ({
    id: r.workflow_uuid,
    wf: r.status,
    status: r.value ? (JSON.parse(r.value) as { json: { status: string } }).json.status : '(none)',
  }));
}

/** Every slot in [from, to] has exactly one run, finished as completed or skipped; returns the slots' IDs. */
async function expectEachSlotOnce(appUrl: string, from: Date, to: Date): Promise<string[]> {
  const expected = new CronSchedule(CRON)
    .slotsBetween(from, to)
    .map((d) => `sched-evaluation-batch-${d.toISOString()}`);
  const runs = await batchRuns(appUrl);
  for (const id of expected) {
    const mine = runs.filter((r) => r.id === id);
    expect(mine, id).toHaveLength(1);
    expect(mine[0]!.wf, id).toBe('SUCCESS');
    expect(['completed', 'skipped'], `${id}: ${mine[0]!.status}`).toContain(mine[0]!.status);
  }
  return expected;
}

/** Waits until `pred` holds (polling), or fails after `ms`. */
async function until(pred: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('a Postgres outage longer than FAILOVER_AFTER', () => {
  it('one replica: stays up and fenced, calls and writes nothing meanwhile; the run and the ingest in flight finish once', async () => {
    const appUrl = await cluster.createDatabase(`outage_one_${databases++}`);
    const sys = systemDatabaseUrlOf(appUrl);
    const dir = await tempDir('outage');
    const file = path.join(dir, 'outage.json');
    await writeDataset(file, 200, 11, 'json');
    // Chunks wait on a lock first (lock timeouts are retried): enough attempts that waiting never fails one.
    const pipelineEnv = {
      PIPELINE_CHUNK_SIZE: '10',
      PIPELINE_CONCURRENCY: '2',
      PIPELINE_STEP_MAX_ATTEMPTS: '100',
      PIPELINE_STEP_INTERVAL_MS: '100',
    };
    const env = {
      ...serviceEnv(appUrl, pipelineEnv),
      XYRA_API_URL: simulator.url,
      BATCH_CRON: CRON,
      EXECUTOR_ID: 'outage-one',
    };
    simulator.reset();
    const a = start(env);
    const port = await readyPort(a);
    try {
      // An ingest in flight: its chunks wait on a lock on `tasks` until the outage cuts the lock's session.
      const holder = new pg.Client({ connectionString: appUrl });
      holder.on('error', () => undefined);
      await holder.connect();
      await holder.query('begin');
      await holder.query('lock table tasks in access exclusive mode');
      const waiting = runCli(
        ['ingest', file, '--wait', '--json', '--timeout', '120'],
        serviceEnv(appUrl, pipelineEnv),
        150_000,
      );
      await until(
        async () =>
          Number(
            (
              await query<{ n: string }>(
                sys,
                `select count(*) as n from dbos.workflow_status where status = 'PENDING' and workflow_uuid like 'ingest:%'`,
              )
            )[0]?.n,
          ) > 0,
        30_000,
        'a chunk in flight',
      );
      // A batch run in flight: its API call takes 1.5 s, and Postgres stops while it is being answered.
      simulator.inject({ type: 'latency', ms: 1_500 });
      const callsBefore = simulator.calls.length;
      await until(() => simulator.calls.length > callsBefore, 10_000, 'an API call');
      const inFlight = simulator.calls.at(-1)!.idempotencyKey!;
      const windowStart = new Date();
      await cluster.stop();
      const stoppedAt = Date.now();
      simulator.inject({ type: 'latency', ms: 0 });

      // Fenced: alive, not ready (with the reason), for the whole outage.
      await a.waitForLog(unreachable, 10_000);
      await sleep(OUTAGE_MS / 2);
      expect(await http(port, '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
      const notReady = await http(port, '/readyz');
      expect(notReady.status).toBe(503);
      expect(String(notReady.body.fenced)).toMatch(/executor claim not confirmed/);
      await sleep(OUTAGE_MS / 2);
      expect(a.child.exitCode).toBeNull();
      const callsWhileDown = simulator.calls.length;
      await cluster.start();
      const restartedAt = Date.now();
      const back = await a.waitForLog(reachable, 30_000);
      const reopenedAt = Date.parse(String(back.time));
      expect(Number(back.outageMs)).toBeGreaterThan(OUTAGE_MS - 1_000);
      await until(async () => (await http(port, '/readyz')).status === 200, 30_000, '/readyz 200');
      console.log(`outage test: Postgres back → claim confirmed in ${reopenedAt - restartedAt} ms`);

      // Nothing was called between the stop and the fence opening again (the in-flight call was answered before).
      expect(simulator.calls.filter((c) => Date.parse(c.at) >= stoppedAt && Date.parse(c.at) < reopenedAt)).toEqual([]);
      expect(callsWhileDown).toBe(simulator.calls.filter((c) => Date.parse(c.at) < stoppedAt).length);

      // The ingest kept waiting and accounts for every record.
      const done = await waiting;
      expect(done.code, done.stderr).toBe(0);
      expect(done.stderr).not.toMatch(/"level":"warn"/); // its reads were retried quietly
      const summary = summarySchema.parse(JSON.parse(done.stdout.trim().split('\n').pop() ?? ''));
      expect(summary).toMatchObject({ records: 200, chunks: 20, failed_chunks: 0, no_outcome: 0 });
      expect(summary.tasks + summary.errors.total).toBe(200);
      expect(await rowCounts(appUrl, 'outage')).toEqual({ tasks: summary.tasks, errors: summary.errors.total });

      // Every slot around the outage has one run; the one in flight completed with one call.
      await sleep(4_000);
      const windowEnd = new Date(Date.now() - 2_500);
      const ids = await expectEachSlotOnce(appUrl, windowStart, windowEnd);
      expect(ids.length).toBeGreaterThanOrEqual(Math.floor(OUTAGE_MS / 2_000));
      expect((await batchRuns(appUrl)).find((r) => r.id === inFlight)).toMatchObject({
        wf: 'SUCCESS',
        status: 'completed',
      });
      const perKey = new Map<string, number>();
      for (const c of simulator.calls)
        perKey.set(c.idempotencyKey ?? '', (perKey.get(c.idempotencyKey ?? '') ?? 0) + 1);
      expect(perKey.get(inFlight)).toBe(1);
      expect([...perKey].filter(([, n]) => n > 1)).toEqual([]);

      // Said once each, however many retries.
      expect(a.logs.filter(unreachable)).toHaveLength(1);
      expect(a.logs.filter(reachable)).toHaveLength(1);
      const noisy = a.logs.filter(
        (l) =>
          (l.level === 'warn' || l.level === 'error' || l.level === 'raw') &&
          Date.parse(String(l.time ?? stoppedAt)) >= stoppedAt - 1_000 &&
          /connect|terminat|ECONN|shutting down|pool/i.test(String(l.msg)),
      );
      expect(noisy.map((l) => l.msg)).toEqual([]);
      expect(a.child.exitCode).toBeNull();
      expect(await a.stop('SIGTERM')).toBe(0);
      await holder.end().catch(() => undefined);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 180_000);

  it('two replicas: both stay up, nobody takes anybody over, every slot runs once', async () => {
    const appUrl = await cluster.createDatabase(`outage_two_${databases++}`);
    const env = { DATABASE_URL: appUrl, XYRA_API_URL: simulator.url, BATCH_CRON: CRON };
    simulator.reset();
    const a = start({ ...env, EXECUTOR_ID: 'outage-a' });
    const b = start({ ...env, EXECUTOR_ID: 'outage-b' });
    await Promise.all([readyPort(a), readyPort(b)]);
    const windowStart = new Date(Date.now() + 1_000);
    await sleep(2_500);
    await cluster.stop();
    const stoppedAt = Date.now();
    await Promise.all([a.waitForLog(unreachable, 10_000), b.waitForLog(unreachable, 10_000)]);
    await sleep(OUTAGE_MS);
    await cluster.start();
    const backs = await Promise.all([a.waitForLog(reachable, 30_000), b.waitForLog(reachable, 30_000)]);
    const reopenedAt = Math.min(...backs.map((l) => Date.parse(String(l.time))));
    await sleep(6_000);
    const windowEnd = new Date(Date.now() - 2_500);
    expect(a.child.exitCode).toBeNull();
    expect(b.child.exitCode).toBeNull();
    expect([...a.logs, ...b.logs].filter(tookOver)).toEqual([]);
    expect(simulator.calls.filter((c) => Date.parse(c.at) >= stoppedAt && Date.parse(c.at) < reopenedAt)).toEqual([]);
    await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
    const ids = await expectEachSlotOnce(appUrl, windowStart, windowEnd);
    expect(ids.length).toBeGreaterThanOrEqual(5);
    const perKey = new Map<string, number>();
    for (const c of simulator.calls) perKey.set(c.idempotencyKey ?? '', (perKey.get(c.idempotencyKey ?? '') ?? 0) + 1);
    expect([...perKey].filter(([, n]) => n > 1)).toEqual([]);
  }, 150_000);
});

describe('one replica loses its claim while the others keep theirs', () => {
  const claimBackend = (id: string) =>
    `select l.pid from pg_locks l where l.locktype = 'advisory' and l.granted and l.objsubid = 2
        and l.classid = hashtext('xyra-scheduler:executor')::oid and l.objid = hashtext('${id}')::oid`;
  const perKey = (calls: Array<{ idempotencyKey?: string | null }>) => {
    const m = new Map<string, number>();
    for (const c of calls) m.set(c.idempotencyKey ?? '', (m.get(c.idempotencyKey ?? '') ?? 0) + 1);
    return m;
  };

  it('its own connections cut (a partition): fenced, the other takes its work over after FAILOVER_AFTER, it comes back with a fresh claim', async () => {
    const appUrl = await cluster.createDatabase(`outage_partition_${databases++}`);
    const proxy = await startTcpProxy(Number(new URL(appUrl).port));
    const viaProxy = new URL(appUrl);
    viaProxy.port = String(proxy.port);
    // A's own simulator: any call A makes is told apart from B's. Its calls take 1.5 s, so one may be in flight.
    const own = new XyraSimulator();
    const ownUrl = await own.start();
    own.inject({ type: 'latency', ms: 1_500 });
    try {
      const a = start({
        DATABASE_URL: viaProxy.toString(),
        BATCH_CRON: CRON,
        XYRA_API_URL: ownUrl,
        EXECUTOR_ID: 'part-a',
      });
      // A alone first, so it has certainly made a call before the cut (racing B through the proxy, it may
      // lose every slot); then B, which must be ready to take A's work over.
      const portA = await readyPort(a);
      await until(() => own.calls.length > 0, 20_000, 'a call from A');
      const b = start({ DATABASE_URL: appUrl, BATCH_CRON: CRON, XYRA_API_URL: simulator.url, EXECUTOR_ID: 'part-b' });
      await readyPort(b);
      proxy.cut();
      const cutAt = Date.now();
      await a.waitForLog(unreachable, 10_000);
      const adoption = await b.waitForLog(
        (l) => tookOver(l) || String(l.msg).startsWith('failover: executor part-a is gone'),
        FAILOVER_AFTER_MS + 15_000,
      );
      expect(adoption.deadExecutorId).toBe('part-a');
      expect((await http(portA, '/readyz')).status).toBe(503);
      expect((await http(portA, '/healthz')).status).toBe(200);
      proxy.heal();
      const back = await a.waitForLog(reachable, 30_000);
      expect(a.logs.filter((l) => String(l.msg).startsWith('taken over while fenced'))).toHaveLength(1);
      const reopenedAt = Date.parse(String(back.time));
      await until(async () => (await http(portA, '/readyz')).status === 200, 30_000, 'A ready again');
      // Nothing from A while it was cut off and fenced.
      expect(own.calls.filter((c) => Date.parse(c.at) >= cutAt && Date.parse(c.at) < reopenedAt)).toEqual([]);
      const resumed = new Date(Date.now() + 500);
      expect(b.child.exitCode).toBeNull();
      // A works again. With B running, A may lose every slot's race (its connections go through the proxy),
      // so B leaves and A must fire the slots alone.
      expect(await b.stop('SIGTERM')).toBe(0);
      await until(
        () => own.calls.some((c) => Date.parse(c.at) >= reopenedAt),
        40_000,
        'a call from A after it is back',
      );
      expect(a.child.exitCode).toBeNull();
      await a.stop('SIGTERM');
      await expectEachSlotOnce(appUrl, resumed, new Date(Date.now() - 3_000));
      // A key is called twice only when A's call was cut off in flight and B finished that run.
      const onA = perKey(own.calls);
      const onB = perKey(simulator.calls);
      expect([...onA].filter(([, n]) => n > 1)).toEqual([]);
      expect([...onB].filter(([, n]) => n > 1)).toEqual([]);
      const both = [...onA.keys()].filter((k) => onB.has(k));
      const runs = await batchRuns(appUrl);
      for (const k of both)
        expect(
          runs.find((r) => r.id === k),
          k,
        ).toMatchObject({ wf: 'SUCCESS', status: 'completed' });
      expect(both.every((k) => own.calls.some((c) => c.idempotencyKey === k && Date.parse(c.at) < cutAt))).toBe(true);
    } finally {
      await own.stop();
      await proxy.close();
    }
  }, 150_000);

  it('its claim held by another session while the database answers: fenced, it calls nothing until it is back', async () => {
    const appUrl = await cluster.createDatabase(`outage_thief_${databases++}`);
    const own = new XyraSimulator();
    const ownUrl = await own.start();
    try {
      const a = start({ DATABASE_URL: appUrl, BATCH_CRON: CRON, XYRA_API_URL: ownUrl, EXECUTOR_ID: 'thief-a' });
      const b = start({ DATABASE_URL: appUrl, BATCH_CRON: CRON, XYRA_API_URL: simulator.url, EXECUTOR_ID: 'thief-b' });
      await Promise.all([readyPort(a), readyPort(b)]);
      await until(() => own.calls.length > 0, 20_000, 'a call from A');
      const thief = new pg.Client({ connectionString: appUrl });
      await thief.connect();
      let fencedAt: number;
      try {
        await thief.query(`select pg_terminate_backend(pid) from (${claimBackend('thief-a')}) c`);
        await thief.query(`select pg_advisory_lock(hashtext('xyra-scheduler:executor'), hashtext('thief-a'))`);
        fencedAt = Date.parse(String((await a.waitForLog(unreachable, 10_000)).time));
        await sleep(3 * FAILOVER_AFTER_MS); // ~4 slots, which B runs alone
      } finally {
        await thief.end();
      }
      const reopenedAt = Date.parse(String((await a.waitForLog(reachable, 30_000)).time));
      await until(
        () => own.calls.some((c) => Date.parse(c.at) >= reopenedAt),
        40_000,
        'a call from A after it is back',
      );
      await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
      expect(own.calls.filter((c) => Date.parse(c.at) >= fencedAt && Date.parse(c.at) < reopenedAt)).toEqual([]);
      expect(b.logs.filter(tookOver)).toEqual([]);
    } finally {
      await own.stop();
    }
  }, 120_000);
});
