// `npx dbos migrate` then `npx dbos start` (under the container entry wrapper, as the Dockerfile runs it)
// against a fresh database: a batch completes, SIGTERM drains the service and the whole tree exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function run(cmd: string, args: string[], env: Record<string, string>) {
  const child = spawn(cmd, args, {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'info', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  const onData = (c: Buffer) => {
    output += c.toString();
    for (const w of [...waiters]) if (w.re.test(output)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => output,
    waitFor: (re: RegExp, ms: number) =>
      new Promise<void>((resolve, reject) => {
        if (re.test(output)) return resolve();
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${output.slice(-3000)}`)), ms);
        waiters.push({ re, resolve: () => (clearTimeout(t), resolve()) });
      }),
  };
}

describe('npx dbos migrate / npx dbos start', () => {
  it('migrates, runs batches, and exits 0 on SIGTERM after draining', async () => {
    const appUrl = await createTestDatabase('dbosstart');
    const env = {
      DATABASE_URL: appUrl,
      DBOS_SYSTEM_DATABASE_URL: systemDatabaseUrlOf(appUrl),
      BATCH_CRON: '*/2 * * * * *',
      EXECUTOR_ID: 'dbos-start-test',
      SHUTDOWN_TIMEOUT_MS: '5000',
    };

    const migrate = run('npx', ['dbos', 'migrate'], env);
    expect(await migrate.exited, migrate.output()).toBe(0);
    expect(await query(appUrl, "select to_regclass('public.tasks')::text as t")).toEqual([{ t: 'tasks' }]);
    expect(await query(env.DBOS_SYSTEM_DATABASE_URL, "select to_regclass('dbos.workflow_status')::text as t")).toEqual([
      { t: 'dbos.workflow_status' },
    ]);

    const start = run('node', ['dist/src/ops/containerInit.js', 'npx', 'dbos', 'start'], env);
    await start.waitFor(/"msg":"batch completed"/, 30_000);
    const t0 = Date.now();
    start.child.kill('SIGTERM');
    const code = await Promise.race([start.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    const ms = Date.now() - t0;
    expect(code, start.output().slice(-3000)).toBe(0);
    expect(ms).toBeLessThan(10_000); // well inside compose's stop_grace_period (30 s)
    expect(start.output()).toMatch(/"msg":"draining: waiting for in-flight workflows"/);
    expect(start.output()).toMatch(/"msg":"stopped"/);
    // No process of the tree is left holding connections.
    const left = await query<{ n: number }>(
      appUrl,
      "select count(*)::int as n from pg_stat_activity where datname in ($1, $2) and application_name like 'xyra-scheduler%'",
      [new URL(appUrl).pathname.slice(1), new URL(env.DBOS_SYSTEM_DATABASE_URL).pathname.slice(1)],
    );
    expect(left).toEqual([{ n: 0 }]);
  }, 90_000);
});
