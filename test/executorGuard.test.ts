// Executor-ID claims and the version warning, against a real Postgres; and, once the service calls the
// guard at start, two service processes with one EXECUTOR_ID.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecutorConflictError } from '../src/errors.js';
import { createLogger } from '../src/logger.js';
import pg from 'pg';
import {
  assertExecutorIdFree,
  CLAIM_HELD_SQL,
  ClaimLostError,
  warnIfNotLatestVersion,
} from '../src/runtime/executorGuard.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { isReady, startServiceProcess, type ServiceProcess } from './support/serviceProcess.js';

const logger = createLogger('silent');
let appUrl: string;
const procs: ServiceProcess[] = [];

beforeAll(async () => {
  appUrl = await createTestDatabase('executorguard');
});
afterAll(async () => {
  for (const p of procs) await p.stop('SIGKILL');
});

describe('assertExecutorIdFree', () => {
  it('refuses a second claim on the same ID until the first is released; other IDs are independent', async () => {
    const first = await assertExecutorIdFree(appUrl, 'replica-a', logger);
    await expect(assertExecutorIdFree(appUrl, 'replica-a', logger)).rejects.toThrow(ExecutorConflictError);
    await expect(assertExecutorIdFree(appUrl, 'replica-a', logger)).rejects.toThrow(
      /EXECUTOR_ID "replica-a" is already in use/,
    );
    const other = await assertExecutorIdFree(appUrl, 'replica-b', logger);
    await first.release();
    const again = await assertExecutorIdFree(appUrl, 'replica-a', logger);
    await Promise.all([again.release(), other.release()]);
  });

  it('a claim dies with its connection (a crashed replica does not block its restart)', async () => {
    await assertExecutorIdFree(appUrl, 'replica-c', logger);
    await query(
      appUrl,
      "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'xyra-scheduler-executor-claim'",
    );
    const claim = await assertExecutorIdFree(appUrl, 'replica-c', logger);
    await claim.release();
  });
});

describe('claim liveness and re-take', () => {
  const heldNow = async (id: string) =>
    (await query<{ held: boolean }>(appUrl, `select ${CLAIM_HELD_SQL} as held`, [id]))[0]?.held;

  it('reports a claim held only while some session holds it, without taking it', async () => {
    expect(await heldNow('replica-d')).toBe(false);
    const claim = await assertExecutorIdFree(appUrl, 'replica-d', logger);
    expect(await heldNow('replica-d')).toBe(true);
    expect(await heldNow('replica-e')).toBe(false);
    await claim.release();
    expect(await heldNow('replica-d')).toBe(false);
  });

  it('re-takes a claim whose connection was cut, and refuses while another session holds it', async () => {
    const claim = await assertExecutorIdFree(appUrl, 'replica-f', logger);
    const backendOf = `select l.pid from pg_locks l where l.locktype = 'advisory' and l.objsubid = 2
       and l.classid = hashtext('xyra-scheduler:executor')::oid and l.objid = hashtext('replica-f')::oid`;
    await query(appUrl, `select pg_terminate_backend(pid) from (${backendOf}) b`);
    for (let i = 0; i < 100 && claim.held; i++) await new Promise((r) => setTimeout(r, 20));
    expect(claim.held).toBe(false);
    expect(await heldNow('replica-f')).toBe(false);
    // The next statement on the claim connection re-takes it first.
    const pid = await claim.withClaimConnection(
      async (c) => (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid,
    );
    expect(claim.held).toBe(true);
    expect((await query<{ pid: number }>(appUrl, backendOf)).map((r) => r.pid)).toEqual([pid]);

    // Cut again, and someone else grabs the lock first: re-taking fails with ClaimLostError.
    const thief = new pg.Client({ connectionString: appUrl });
    await thief.connect();
    try {
      await thief.query(`select pg_terminate_backend(pid) from (${backendOf}) b`);
      await thief.query(`select pg_advisory_lock(hashtext('xyra-scheduler:executor'), hashtext('replica-f'))`);
      for (let i = 0; i < 100 && claim.held; i++) await new Promise((r) => setTimeout(r, 20));
      await expect(claim.withClaimConnection(async () => 1)).rejects.toThrow(ClaimLostError);
    } finally {
      await thief.end();
    }
    await claim.release();
  });
});

describe('warnIfNotLatestVersion', () => {
  it('is quiet before the system database exists and reports the latest registered version', async () => {
    const sys = systemDatabaseUrlOf(appUrl);
    expect(await warnIfNotLatestVersion(sys, 'xyra-scheduler', '0.1.0', logger)).toBeUndefined();
    await query(appUrl.replace(/\/[^/]+$/, '/postgres'), `create database ${new URL(sys).pathname.slice(1)}`);
    await query(sys, 'create schema dbos');
    await query(
      sys,
      'create table dbos.application_versions (version_name text, version_timestamp bigint, application_name text)',
    );
    await query(
      sys,
      "insert into dbos.application_versions values ('0.1.0', 1, 'xyra-scheduler'), ('0.2.0', 2, 'xyra-scheduler')",
    );
    const lines: string[] = [];
    const capture = createLogger('warn', {
      write: (l: string) => (lines.push(l), true),
    } as unknown as NodeJS.WritableStream);
    expect(await warnIfNotLatestVersion(sys, 'xyra-scheduler', '0.1.0', capture)).toBe('0.2.0');
    expect(lines.join('')).toMatch(/runs version 0.1.0 but the latest registered version is 0.2.0/);
  });
});

describe('two service processes with one EXECUTOR_ID', () => {
  it('the second exits non-zero with a clear message; the first keeps running', async () => {
    const db = await createTestDatabase('executordup');
    const env = { DATABASE_URL: db, EXECUTOR_ID: 'same-id', BATCH_CRON: '0 0 1 1 *' };
    const first = startServiceProcess(env);
    procs.push(first);
    await first.waitForLog(isReady);
    const second = startServiceProcess(env);
    procs.push(second);
    const { code } = await second.exited;
    expect(code).not.toBe(0);
    const fatal = second.logs.find((l) => l.level === 'fatal');
    expect(fatal?.msg).toMatch(/EXECUTOR_ID "same-id" is already in use by a running replica/);
    expect(first.child.exitCode).toBeNull();
    expect(await first.stop()).toBe(0);
  });
});
