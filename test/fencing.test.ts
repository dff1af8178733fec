// Fencing with real service processes on one database: a replica whose claim connection is cut re-takes
// its claim, or is fenced (stays up, runs nothing) until it can (FENCE_EXIT=true: exits before any
// takeover); every connection of two replicas dropped at once (what a Postgres restart does to them) still
// runs every slot once.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { CronSchedule } from '../src/evaluation/cron.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { FAILOVER_AFTER_MS, replicaFixture, sleep, tookOver } from './support/replicas.js';
import { isReady, READY_TIMEOUT_MS } from './support/serviceProcess.js';

const { simulator, start } = replicaFixture();

describe('fencing: a replica whose claim connection is cut', () => {
  const claimBackend = (id: string) =>
    `select l.pid from pg_locks l where l.locktype = 'advisory' and l.granted and l.objsubid = 2
        and l.classid = hashtext('xyra-scheduler:executor')::oid and l.objid = hashtext('${id}')::oid`;

  it('re-takes its claim at once when it can; is fenced (stays up, runs nothing) while it cannot', async () => {
    const appUrl = await createTestDatabase('failover_fence');
    const env = { DATABASE_URL: appUrl, XYRA_API_URL: simulator.url, BATCH_CRON: '*/2 * * * * *' };
    const a = start({ ...env, EXECUTOR_ID: 'fence-a' });
    const b = start({ ...env, EXECUTOR_ID: 'fence-b' });
    await Promise.all([a.waitForLog(isReady, READY_TIMEOUT_MS), b.waitForLog(isReady, READY_TIMEOUT_MS)]);

    // 1. Dropped connection, claim free: A re-takes it well within FAILOVER_AFTER; nobody takes A over.
    await query(appUrl, `select pg_terminate_backend(pid) from (${claimBackend('fence-a')}) c`);
    await a.waitForLog((l) => l.msg === 're-took the executor claim on a new connection', FAILOVER_AFTER_MS);
    await sleep(FAILOVER_AFTER_MS + 1_000);
    expect(a.child.exitCode).toBeNull();
    expect(b.logs.filter(tookOver)).toEqual([]);

    // 2. Dropped connection and someone else holds A's lock (as if it could not be re-taken): A is fenced —
    //    it stays up, /readyz 503 — and nobody takes it over while its claim is held; once the lock is
    //    free A re-takes it (same generation: nobody adopted anything) and is ready again, well before B
    //    could judge it gone.
    const port = Number(a.logs.find(isReady)?.healthPort);
    const thief = new pg.Client({ connectionString: appUrl });
    await thief.connect();
    try {
      await thief.query(`select pg_terminate_backend(pid) from (${claimBackend('fence-a')}) c`);
      await thief.query(`select pg_advisory_lock(hashtext('xyra-scheduler:executor'), hashtext('fence-a'))`);
      const fenced = await a.waitForLog(
        (l) => String(l.msg).startsWith('database unreachable'),
        FAILOVER_AFTER_MS + 2_000,
      );
      expect(fenced.level).toBe('error');
      await sleep(FAILOVER_AFTER_MS + 1_000);
      expect(a.child.exitCode).toBeNull();
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect(b.logs.filter(tookOver)).toEqual([]);
    } finally {
      await thief.end();
    }
    await a.waitForLog((l) => String(l.msg).startsWith('database reachable again'), FAILOVER_AFTER_MS + 5_000);
    for (let i = 0; i < 100 && (await fetch(`http://127.0.0.1:${port}/readyz`)).status !== 200; i++) await sleep(100);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    await sleep(FAILOVER_AFTER_MS + 1_000);
    expect(b.logs.filter(tookOver)).toEqual([]);
    expect(a.logs.filter((l) => String(l.msg).startsWith('taken over while fenced'))).toEqual([]);
    expect(a.child.exitCode).toBeNull();
    await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
  }, 180_000);

  it('FENCE_EXIT=true keeps the crash-only rule: exits before any takeover, which follows once the claim is free', async () => {
    const appUrl = await createTestDatabase('failover_fence_exit');
    const env = { DATABASE_URL: appUrl, XYRA_API_URL: simulator.url, BATCH_CRON: '*/2 * * * * *' };
    const a = start({ ...env, EXECUTOR_ID: 'fence-exit-a', FENCE_EXIT: 'true' });
    const b = start({ ...env, EXECUTOR_ID: 'fence-exit-b' });
    await Promise.all([a.waitForLog(isReady, READY_TIMEOUT_MS), b.waitForLog(isReady, READY_TIMEOUT_MS)]);
    const thief = new pg.Client({ connectionString: appUrl });
    await thief.connect();
    try {
      await thief.query(`select pg_terminate_backend(pid) from (${claimBackend('fence-exit-a')}) c`);
      await thief.query(`select pg_advisory_lock(hashtext('xyra-scheduler:executor'), hashtext('fence-exit-a'))`);
      const fenced = await a.waitForLog((l) => l.level === 'fatal', FAILOVER_AFTER_MS + 2_000);
      expect(String(fenced.msg)).toMatch(/^fenced/);
      const { code } = await a.exited;
      expect(code).toBe(1);
      await sleep(500);
      expect(b.logs.filter(tookOver)).toEqual([]);
    } finally {
      await thief.end();
    }
    const gone = await b.waitForLog(
      (l) => (typeof l.msg === 'string' && l.msg.startsWith('failover: executor fence-exit-a is gone')) || tookOver(l),
      FAILOVER_AFTER_MS + 10_000,
    );
    expect(Date.parse(String(gone.time))).toBeGreaterThan(
      Date.parse(String(a.logs.find((l) => String(l.msg).startsWith('fenced'))?.time)),
    );
    await b.stop('SIGTERM');
  }, 180_000);
});

describe('every connection of two replicas dropped at once (as a Postgres restart does)', () => {
  it('both replicas carry on, nobody is taken over, and every slot runs once', async () => {
    const appUrl = await createTestDatabase('failover_restart');
    const cron = '*/2 * * * * *';
    const env = { DATABASE_URL: appUrl, XYRA_API_URL: simulator.url, BATCH_CRON: cron };
    const a = start({ ...env, EXECUTOR_ID: 'restart-a' });
    const b = start({ ...env, EXECUTOR_ID: 'restart-b' });
    await Promise.all([a.waitForLog(isReady, READY_TIMEOUT_MS), b.waitForLog(isReady, READY_TIMEOUT_MS)]);
    simulator.reset();
    const windowStart = new Date(Date.now() + 1_000);
    await sleep(1_500);
    const dbs = [new URL(appUrl).pathname.slice(1), new URL(systemDatabaseUrlOf(appUrl)).pathname.slice(1)];
    const killed = await query<{ n: string }>(
      appUrl,
      `select count(*) filter (where pg_terminate_backend(pid)) as n from pg_stat_activity
        where datname = any($1) and pid <> pg_backend_pid() and backend_type = 'client backend'`,
      [dbs],
    );
    expect(Number(killed[0]?.n)).toBeGreaterThanOrEqual(2); // at least the two claim connections
    await sleep(8_000);
    const windowEnd = new Date(Date.now() - 2_500);
    expect(a.child.exitCode).toBeNull();
    expect(b.child.exitCode).toBeNull();
    await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);

    expect(
      [...a.logs, ...b.logs].filter((l) => l.msg === 're-took the executor claim on a new connection'),
    ).toHaveLength(2);
    expect([...a.logs, ...b.logs].filter((l) => tookOver(l) || String(l.msg).startsWith('fenced'))).toEqual([]);
    const expected = new CronSchedule(cron)
      .slotsBetween(windowStart, windowEnd)
      .map((d) => `sched-evaluation-batch-${d.toISOString()}`);
    const rows = await query<{ workflow_uuid: string; value: string | null }>(
      systemDatabaseUrlOf(appUrl),
      `select s.workflow_uuid, e.value from dbos.workflow_status s
         left join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid and e.key = 'batch_evaluation_status'
        where s.workflow_uuid = any($1)`,
      [expected],
    );
    const calls = new Map<string, number>();
    for (const c of simulator.calls) calls.set(c.idempotencyKey ?? '', (calls.get(c.idempotencyKey ?? '') ?? 0) + 1);
    expect(expected.length).toBeGreaterThanOrEqual(3);
    for (const id of expected) {
      const run = rows.filter((r) => r.workflow_uuid === id);
      expect(run, id).toHaveLength(1);
      const status = (JSON.parse(run[0]!.value ?? '{}') as { json?: { status?: string; skipped_reason?: string } })
        .json;
      // One outcome per slot: completed with one call, or, when the dropped connections delayed runs past the
      // next slot on a loaded machine, skipped by the overlap guard or the catch-up policy without a call.
      const outcome =
        status?.status === 'skipped' ? `skipped:${status.skipped_reason ?? '?'}` : (status?.status ?? '(none)');
      expect(['completed', 'skipped:in_progress', 'skipped:missed'], `${id}: ${outcome}`).toContain(outcome);
      expect(calls.get(id) ?? 0, id).toBe(outcome === 'completed' ? 1 : 0);
    }
    expect(expected.filter((id) => calls.get(id) === 1).length).toBeGreaterThanOrEqual(2);
  }, 180_000);
});
