// SIGTERM/SIGINT during start-up, at several moments: the service stops what it had started (the embedded
// Postgres included), leaves no connection behind, and exits 0. Real processes, real Postgres.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { isReady, startServiceProcess, type LogLine, type ServiceProcess } from './support/serviceProcess.js';

let dataDir: string;
const running: ServiceProcess[] = [];

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-signals-'));
  await fs.chmod(dataDir, 0o755); // the postgres OS user must reach its data directory when we run as root
});

afterAll(async () => {
  for (const p of running) await p.stop('SIGKILL');
  for (const pid of await postgresProcessesOf(dataDir)) process.kill(pid, 'SIGKILL');
  await fs.rm(dataDir, { recursive: true, force: true });
});

function start(env: Record<string, string>): ServiceProcess {
  const p = startServiceProcess({ BATCH_CRON: '*/2 * * * * *', SHUTDOWN_TIMEOUT_MS: '5000', ...env });
  running.push(p);
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether an initdb process is creating a cluster under `dir`. */
async function initdbRunsIn(dir: string): Promise<boolean> {
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const args = (await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (args[0]?.endsWith('/initdb') && args.some((a) => a.startsWith(dir))) return true;
  }
  return false;
}

/** Every live (non-zombie) postgres process whose command line names a directory under `dir`. */
async function postgresProcessesOf(dir: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const [cmdline, stat] = await Promise.all([
      fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => ''),
      fs.readFile(`/proc/${name}/stat`, 'utf8').catch(() => ''),
    ]);
    if (cmdline.includes('postgres') && cmdline.includes(dir) && !/^\d+ \(.*\) Z/.test(stat)) found.push(Number(name));
  }
  return found;
}

const msg = (text: string) => (l: LogLine) => l.msg === text;
const interrupted = msg('start-up interrupted: stopped');

describe('a signal during start-up', () => {
  it('while initdb creates the embedded cluster: no server is started, exit 0', async () => {
    const p = start({ XYRA_DATA_DIR: dataDir, EXECUTOR_ID: 'sig-initdb', LOG_LEVEL: 'debug' });
    // The signal lands while initdb runs (it takes over a second): found by its process, not by a log line, which
    // comes only once initdb is done (on a loaded machine the server could be up before the test read that line).
    for (const deadline = Date.now() + 60_000; !(await initdbRunsIn(dataDir)); await sleep(20))
      expect(Date.now(), 'initdb never ran').toBeLessThan(deadline);
    p.child.kill('SIGTERM');
    const { code } = await p.exited;
    expect(code, p.output().slice(-2000)).toBe(0);
    expect(p.logs.some(interrupted)).toBe(true);
    expect(p.logs.some(msg('DATABASE_URL not set: started the embedded Postgres'))).toBe(false);
    expect(await postgresProcessesOf(dataDir)).toEqual([]);
  }, 180_000);

  it('just after the embedded Postgres is up: it is stopped again, exit 0', async () => {
    const p = start({ XYRA_DATA_DIR: dataDir, EXECUTOR_ID: 'sig-pg-up' });
    await p.waitForLog(msg('DATABASE_URL not set: started the embedded Postgres'), 60_000);
    expect((await postgresProcessesOf(dataDir)).length).toBeGreaterThan(0);
    p.child.kill('SIGINT');
    const { code } = await p.exited;
    expect(code, p.output().slice(-2000)).toBe(0);
    expect(p.logs.some(interrupted)).toBe(true);
    expect(p.logs.some(isReady)).toBe(false);
    expect(p.logs.some(msg('embedded Postgres stopped'))).toBe(true);
    expect(await postgresProcessesOf(dataDir)).toEqual([]);
  }, 180_000);

  it('as DBOS launches on the embedded Postgres: DBOS and Postgres are stopped, exit 0', async () => {
    const p = start({ XYRA_DATA_DIR: dataDir, EXECUTOR_ID: 'sig-launch' });
    await p.waitForLog(msg('Initializing DBOS (v5.3.0)'), 60_000);
    p.child.kill('SIGTERM');
    const { code } = await p.exited;
    expect(code, p.output().slice(-2000)).toBe(0);
    expect(p.logs.some(msg('embedded Postgres stopped'))).toBe(true);
    expect(await postgresProcessesOf(dataDir)).toEqual([]);
  }, 180_000);

  it('while waiting for another replica to finish launching: it never launches, leaves no connection, exit 0', async () => {
    const appUrl = await createTestDatabase('signals');
    const sysUrl = systemDatabaseUrlOf(appUrl);
    // Hold the start-up lock, as a replica that is launching would.
    const holder = new pg.Client({ connectionString: appUrl });
    await holder.connect();
    await holder.query("select pg_advisory_lock(hashtext('xyra-scheduler:startup'))");
    try {
      const p = start({ DATABASE_URL: appUrl, EXECUTOR_ID: 'sig-lock' });
      // The service's start-up connection is there, trying the lock.
      for (let waiting = 0; waiting === 0; await new Promise((r) => setTimeout(r, 100))) {
        const rows = await query<{ n: number }>(
          appUrl,
          // This database only: other files' services run start-ups of their own at the same time.
          "select count(*)::int as n from pg_stat_activity where application_name = 'xyra-scheduler-startup' and datname = $1",
          [new URL(appUrl).pathname.slice(1)],
        );
        waiting = rows[0]!.n;
        if (p.child.exitCode !== null) throw new Error(`service exited early:\n${p.output()}`);
      }
      p.child.kill('SIGTERM');
      // It stops waiting at once: the lock is still held while it exits.
      const { code } = await p.exited;
      expect(code, p.output().slice(-2000)).toBe(0);
      expect(p.logs.some(interrupted)).toBe(true);
      expect(p.logs.some(msg('Initializing DBOS (v5.3.0)'))).toBe(false);
      const left = await query<{ n: number }>(
        appUrl,
        "select count(*)::int as n from pg_stat_activity where datname in ($1, $2) and application_name like 'xyra-scheduler%'",
        [new URL(appUrl).pathname.slice(1), new URL(sysUrl).pathname.slice(1)],
      );
      expect(left).toEqual([{ n: 0 }]);
    } finally {
      await holder.end();
    }
  }, 180_000);
});
