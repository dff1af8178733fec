// The patch we carry for the DBOS SDK (patches/@dbos-inc+dbos-sdk+5.3.0.patch, applied by patch-package at
// install): the CLI's telemetry timer is unref'd, so `dbos start` exits by itself once its start commands have
// succeeded; and launch's LISTEN self-test stops waiting as soon as its notification arrives. Pinned to the SDK version it was made for: when the SDK changes under it, this file goes red and
// says what to check (is the fix upstream? does the patch still apply and still work?).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const SDK = 'node_modules/@dbos-inc/dbos-sdk';
const PATCHES = fs.readdirSync('patches');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xyra-dbos-patch-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

/** `dbos start` with one start command, in a directory of its own: its exit code, or 'still running'. */
async function dbosStart(command: string): Promise<{ code: number | null | 'still running'; output: string }> {
  const dir = fs.mkdtempSync(path.join(tmp, 'app-'));
  fs.writeFileSync(
    path.join(dir, 'dbos-config.yaml'),
    `name: patch-check\nlanguage: node\nruntimeConfig:\n  start:\n    - ${command}\n`,
  );
  const child = spawn(process.execPath, [path.resolve(SDK, 'dist/src/cli/cli.js'), 'start'], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOME: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const bound = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p, new Promise<'still running'>((r) => setTimeout(() => r('still running'), ms))]);
  // First the CLI's own success line (however slowly a loaded machine gets there), then its exit: without the
  // patch it never exits after that line; 60 s is only a bound for a loaded machine, not a measurement.
  const succeeded = new Promise<void>((resolve) => {
    const check = () => /Process exited successfully/.test(output) && resolve();
    child.stdout.on('data', check);
    child.stderr.on('data', check);
  });
  await bound(Promise.race([succeeded, exited]), 150_000);
  const code = await bound(exited, 60_000);
  if (code === 'still running') child.kill('SIGKILL');
  return { code, output };
}

describe('the DBOS SDK patch', () => {
  it('is made for the installed SDK version, which package.json pins exactly', () => {
    const installed = readJson(path.join(SDK, 'package.json')).version;
    const pinned = (readJson('package.json').dependencies as Record<string, string>)['@dbos-inc/dbos-sdk'];
    expect(PATCHES).toEqual([`@dbos-inc+dbos-sdk+${String(installed)}.patch`]);
    // Upgrading the SDK: check whether upstream fixed the timer (then delete the patch), else re-create it with
    // `npx patch-package @dbos-inc/dbos-sdk`, and re-run test/dbosStart.test.ts and test/dbosInternals*.test.ts.
    expect({ installed, pinned }).toEqual({ installed: '5.3.0', pinned: '5.3.0' });
  });

  it('is applied: the telemetry collector unrefs its timer', () => {
    const collector = fs.readFileSync(path.join(SDK, 'dist/src/telemetry/collector.js'), 'utf8');
    expect(collector).toContain('this.signalBufferID.unref();');
  });

  // Its effect is a time (~0.1 s less of every DBOS.launch, and so of every start-up): bench/startup.ts shows it.
  it("is applied: DBOS's LISTEN self-test wakes when its notification arrives, not at the next 100 ms tick", () => {
    const sysdb = fs.readFileSync(path.join(SDK, 'dist/src/system_database.js'), 'utf8');
    expect(sysdb).toContain('selfTestReceived = true;\n                        wakeSelfTest();');
    expect(sysdb).toMatch(/wakeSelfTest = r;\n\s+setTimeout\(r, 100\);/);
  });

  it('lets `dbos start` exit 0 by itself after its start command succeeds, with a clean line', async () => {
    const { code, output } = await dbosStart('echo started-and-done');
    expect(code, output).toBe(0);
    expect(output).toContain('started-and-done');
    expect(output).toMatch(/Process exited successfully with code 0/);
    expect(output).not.toMatch(/Error|SIGKILL/);
  }, 240_000);

  it('is carried into the production image: patch-package is a production dependency run after its install', () => {
    const pkg = readJson('package.json') as { dependencies: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.dependencies['patch-package']).toBeDefined();
    expect(pkg.scripts.postinstall).toMatch(/^patch-package\b/);
    const df = fs.readFileSync('Dockerfile', 'utf8');
    expect(df).toMatch(/^COPY patches \.\/patches$/m);
    // The production install skips scripts (so postinstall too): the patch must be applied explicitly after it.
    expect(df).toMatch(
      /npm ci --omit=dev --omit=optional --ignore-scripts \\\n\s+&& node_modules\/\.bin\/patch-package --error-on-fail/,
    );
    const lock = readJson('package-lock.json') as { packages: Record<string, { dev?: boolean; optional?: boolean }> };
    expect(lock.packages['node_modules/patch-package']).toMatchObject({ version: expect.any(String) });
    expect(lock.packages['node_modules/patch-package']?.dev).toBeUndefined();
  });
});
