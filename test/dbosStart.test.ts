// `npx dbos migrate` then `dbos start` against a fresh database, run the ways operators run it:
// - as the container runs it (`dbos start` straight under the init): SIGTERM to it drains the service and
//   the whole tree exits 0;
// - `npx dbos start` typed in a terminal (a real pseudo-terminal): Ctrl-C, or SIGTERM to the service,
//   ends `npx dbos start` itself with exit 0 after the drain.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function run(cmd: string, args: string[], env: Record<string, string>, stdin: 'ignore' | 'pipe' = 'ignore') {
  const child = spawn(cmd, args, {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'info', PORT: '0', ...env },
    stdio: [stdin, 'pipe', 'pipe'],
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
        const t = setTimeout(
          () => reject(new Error(`timed out waiting for ${re}; output:\n${output.slice(-3000)}`)),
          ms,
        );
        waiters.push({ re, resolve: () => (clearTimeout(t), resolve()) });
      }),
  };
}

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms))]);

/** `cmd` in a real pseudo-terminal (util-linux `script`): its stdin is the terminal's keyboard. */
function inTerminal(cmd: string, env: Record<string, string>) {
  return run('script', ['-qfec', cmd, '/dev/null'], { ...env, SHELL: '/bin/sh' }, 'pipe');
}

/** The service process (dist/src/main.js) of this executor ID. */
function servicePid(executorId: string): number | undefined {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const environ = fs.readFileSync(`/proc/${name}/environ`, 'utf8');
      if (cmdline.includes('dist/src/main.js') && environ.split('\0').includes(`EXECUTOR_ID=${executorId}`))
        return Number(name);
    } catch {
      // exited while we looked
    }
  }
  return undefined;
}

let env: Record<string, string>;
let appUrl: string;

async function connectionsLeft(): Promise<number> {
  const rows = await query<{ n: number }>(
    appUrl,
    "select count(*)::int as n from pg_stat_activity where datname in ($1, $2) and application_name like 'xyra-scheduler%'",
    [new URL(appUrl).pathname.slice(1), new URL(env.DBOS_SYSTEM_DATABASE_URL!).pathname.slice(1)],
  );
  return rows[0]!.n;
}

beforeAll(async () => {
  appUrl = await createTestDatabase('dbosstart');
  env = {
    DATABASE_URL: appUrl,
    DBOS_SYSTEM_DATABASE_URL: systemDatabaseUrlOf(appUrl),
    BATCH_CRON: '*/2 * * * * *',
    SHUTDOWN_TIMEOUT_MS: '5000',
  };
  const migrate = run('npx', ['dbos', 'migrate'], env);
  expect(await migrate.exited, migrate.output()).toBe(0);
}, 180_000); // npx dbos migrate: generous for a loaded machine

describe('npx dbos migrate / dbos start', () => {
  it('migrate creates both schemas', async () => {
    expect(await query(appUrl, "select to_regclass('public.tasks')::text as t")).toEqual([{ t: 'tasks' }]);
    expect(await query(env.DBOS_SYSTEM_DATABASE_URL!, "select to_regclass('dbos.workflow_status')::text as t")).toEqual(
      [{ t: 'dbos.workflow_status' }],
    );
  });

  it('as the container runs it: SIGTERM to `dbos start` drains the service and the tree exits 0', async () => {
    const start = run('node_modules/.bin/dbos', ['start'], { ...env, EXECUTOR_ID: 'dbos-start-container' });
    await start.waitFor(/"msg":"batch completed"/, 90_000);
    start.child.kill('SIGTERM');
    const code = await within(start.exited, 60_000);
    expect(code, start.output().slice(-3000)).toBe(0);
    expect(start.output()).toMatch(/"msg":"draining: waiting for in-flight workflows"/);
    expect(start.output()).toMatch(/"msg":"stopped"/);
    // A clean stop reads as one: the CLI's success line, no SIGKILL and no stack trace (patches/, dbosPatch.test.ts).
    expect(start.output()).toMatch(/Process exited successfully with code 0/);
    expect(start.output()).not.toMatch(/signal SIGKILL|Process exited with code|\n\s+at /);
    expect(await connectionsLeft()).toBe(0);
  }, 240_000);

  it('in a terminal: Ctrl-C ends `npx dbos start` with exit 0 after one drain', async () => {
    const term = inTerminal('npx dbos start', { ...env, EXECUTOR_ID: 'dbos-start-ctrl-c' });
    await term.waitFor(/"msg":"batch completed"/, 90_000);
    term.child.stdin!.write('\x03'); // the key a terminal turns into Ctrl-C
    const code = await within(term.exited, 60_000);
    expect(code, term.output().slice(-3000)).toBe(0);
    expect(term.output()).toMatch(/"msg":"stopped"/);
    expect(term.output()).not.toMatch(/second signal/);
    // A clean stop reads as one: the CLI's success line, no SIGKILL and no stack trace (patches/, dbosPatch.test.ts).
    expect(term.output()).toMatch(/Process exited successfully with code 0/);
    expect(term.output()).not.toMatch(/signal SIGKILL|Process exited with code|\n\s+at /);
    expect(servicePid('dbos-start-ctrl-c')).toBeUndefined();
    expect(await connectionsLeft()).toBe(0);
  }, 240_000);

  it('in a terminal: SIGTERM to the service ends `npx dbos start` with exit 0', async () => {
    const term = inTerminal('npx dbos start', { ...env, EXECUTOR_ID: 'dbos-start-sigterm' });
    await term.waitFor(/"msg":"batch completed"/, 90_000);
    const pid = servicePid('dbos-start-sigterm');
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGTERM');
    const code = await within(term.exited, 60_000);
    expect(code, term.output().slice(-3000)).toBe(0);
    expect(term.output()).toMatch(/"msg":"stopped"/);
    expect(await connectionsLeft()).toBe(0);
  }, 240_000);
});
