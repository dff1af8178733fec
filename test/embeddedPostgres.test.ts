// The new user's path: no DATABASE_URL, no XYRA_API_URL. The service starts its own Postgres under the
// data directory and the built-in simulator, keeps data across restarts, and recovers from killed runs.
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

let dataDir: string;
const running: ServiceProcess[] = [];

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-embedded-'));
  await fs.chmod(dataDir, 0o755); // the postgres OS user must reach its data directory when we run as root
});

afterAll(async () => {
  for (const p of running) await p.stop('SIGTERM');
  await fs.rm(dataDir, { recursive: true, force: true });
});

function start(): ServiceProcess {
  const p = startServiceProcess({ XYRA_DATA_DIR: dataDir, BATCH_CRON: '*/2 * * * * *', EXECUTOR_ID: 'embedded-1' });
  running.push(p);
  return p;
}

async function postmasterPid(): Promise<number | undefined> {
  const text = await fs.readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').catch(() => undefined);
  return text ? Number.parseInt(text.split('\n')[0] ?? '', 10) : undefined;
}

/** Alive and not a zombie (a reparented postmaster may wait to be reaped by whatever init we run under). */
async function alive(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat !== undefined && !/^\d+ \(.*\) Z/.test(stat);
}

const completed = (l: { msg?: string }) => l.msg === 'batch completed';

describe('embedded defaults', () => {
  it('starts its own Postgres and simulator, announcing each once, and stops Postgres on SIGTERM', async () => {
    const p = start();
    await p.waitForLog(isReady, READY_TIMEOUT_MS);
    await p.waitForLog(completed, 15_000);
    expect(p.logs.filter((l) => l.msg === 'DATABASE_URL not set: started the embedded Postgres')).toHaveLength(1);
    expect(p.logs.filter((l) => l.msg === 'XYRA_API_URL not set: started the built-in Xyra simulator')).toHaveLength(1);
    const pid = await postmasterPid();
    expect(pid && (await alive(pid))).toBe(true);
    expect(await p.stop('SIGTERM')).toBe(0);
    expect(await alive(pid!)).toBe(false);
    // The password lives in a private file and is never printed.
    const state = JSON.parse(await fs.readFile(path.join(dataDir, 'postgres.json'), 'utf8')) as { password: string };
    expect(p.output()).not.toContain(state.password);
    expect((await fs.stat(path.join(dataDir, 'postgres.json'))).mode & 0o077).toBe(0);
  });

  it('keeps its data across restarts and lets the CLI reach the same server', async () => {
    const p = start();
    await p.waitForLog(isReady, READY_TIMEOUT_MS);
    expect(p.logs.some((l) => l.msg === 'embedded Postgres: initialised a new cluster')).toBe(false);
    const migrate = await runCli(['migrate'], { XYRA_DATA_DIR: dataDir, LOG_LEVEL: 'info' });
    expect(migrate.code).toBe(0);
    expect(migrate.stderr).toContain('joined the server another process of this directory runs');
    expect(migrate.stderr).toContain('already up to date');
    expect(await p.stop('SIGTERM')).toBe(0);
  });

  it('adopts the Postgres a SIGKILLed run left behind', async () => {
    const p = start();
    await p.waitForLog(isReady, READY_TIMEOUT_MS);
    const pid = await postmasterPid();
    p.child.kill('SIGKILL');
    await p.exited;
    expect(await alive(pid!)).toBe(true); // the detached postmaster outlives its owner

    const again = start();
    await again.waitForLog(isReady, READY_TIMEOUT_MS);
    expect(again.logs.some((l) => String(l.msg).includes('adopted the embedded Postgres'))).toBe(true);
    await again.waitForLog(completed, 15_000);
    expect(await again.stop('SIGTERM')).toBe(0);
    expect(await alive(pid!)).toBe(false);
  });

  // main.ts starts the embedded Postgres before the service's modules load, so it is already coming up when a
  // later step fails: start-up must stop it all the same.
  it('stops the Postgres it started when start-up fails after it (PORT taken)', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '0.0.0.0', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const p = startServiceProcess({ XYRA_DATA_DIR: dataDir, PORT: String(port), EXECUTOR_ID: 'embedded-port' });
      running.push(p);
      expect((await p.exited).code).toBe(1);
      expect(p.logs.find((l) => l.level === 'fatal')?.msg).toMatch(/PORT \d+ is already in use/);
      expect(p.logs.filter((l) => l.msg === 'embedded Postgres stopped')).toHaveLength(1);
      const pid = await postmasterPid();
      expect(pid === undefined || !(await alive(pid))).toBe(true);
    } finally {
      blocker.close();
    }
  });

  it("stops the Postgres it started when the service's modules fail to load", async () => {
    // A copy of dist/ whose service.js throws on load (node_modules linked to this checkout's).
    const copy = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-broken-service-'));
    try {
      await fs.cp('dist', path.join(copy, 'dist'), { recursive: true });
      await fs.copyFile('package.json', path.join(copy, 'package.json'));
      await fs.symlink(path.resolve('node_modules'), path.join(copy, 'node_modules'));
      await fs.writeFile(path.join(copy, 'dist/src/service.js'), "throw new Error('service failed to load (test)');\n");
      const p = startServiceProcess(
        { XYRA_DATA_DIR: dataDir, EXECUTOR_ID: 'embedded-broken' },
        path.join(copy, 'dist/src/main.js'),
      );
      running.push(p);
      expect((await p.exited).code).toBe(1);
      expect(p.logs.find((l) => l.level === 'fatal')?.msg).toMatch(/service failed to load \(test\)/);
      expect(p.logs.filter((l) => l.msg === 'embedded Postgres stopped')).toHaveLength(1);
      const pid = await postmasterPid();
      expect(pid === undefined || !(await alive(pid))).toBe(true);
    } finally {
      await fs.rm(copy, { recursive: true, force: true });
    }
  });

  it('recovers from a stale postmaster.pid whose PID is not a postgres', async () => {
    expect(await postmasterPid()).toBeUndefined();
    // A PID that is alive but not postgres (in containers PID 1 is common): postgres itself would refuse.
    await fs.writeFile(path.join(dataDir, 'pg', 'postmaster.pid'), `${process.pid}\n${path.join(dataDir, 'pg')}\n`);
    const p = start();
    await p.waitForLog(isReady, READY_TIMEOUT_MS);
    expect(p.logs.some((l) => String(l.msg).includes('stale postmaster.pid'))).toBe(true);
    await p.waitForLog(completed, 15_000);
    expect(await p.stop('SIGTERM')).toBe(0);
  });

  // Run as root (a fresh machine or CI): the postgres OS user must still reach its cluster.
  it.runIf(process.getuid?.() === 0)(
    'as root, keeps the cluster where postgres can reach it when the data directory is private',
    async () => {
      const privateParent = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-private-'));
      await fs.chmod(privateParent, 0o700); // like a project cloned under /root
      const privateData = path.join(privateParent, '.data');
      const p = startServiceProcess({
        XYRA_DATA_DIR: privateData,
        BATCH_CRON: '*/2 * * * * *',
        EXECUTOR_ID: 'embedded-private',
      });
      running.push(p);
      try {
        const started = await p.waitForLog(
          (l) => l.msg === 'DATABASE_URL not set: started the embedded Postgres',
          90_000,
        );
        expect(String(started.dataDir)).toMatch(/^\/var\/lib\/xyra-scheduler\/[0-9a-f]{16}\/pg$/);
        await p.waitForLog(completed, READY_TIMEOUT_MS); // from the embedded start: DBOS, migrations, then a slot
        const state = JSON.parse(await fs.readFile(path.join(privateData, 'postgres.json'), 'utf8')) as {
          pgData: string;
        };
        expect(state.pgData).toBe(started.dataDir);
        const migrate = await runCli(['migrate'], { XYRA_DATA_DIR: privateData, LOG_LEVEL: 'info' });
        expect(migrate.code, migrate.stderr).toBe(0);
        expect(await p.stop('SIGTERM')).toBe(0);
      } finally {
        const state = await fs.readFile(path.join(privateData, 'postgres.json'), 'utf8').catch(() => undefined);
        const pgData = state ? (JSON.parse(state) as { pgData?: string }).pgData : undefined;
        if (pgData) await fs.rm(path.dirname(pgData), { recursive: true, force: true });
        await fs.rm(privateParent, { recursive: true, force: true });
      }
    },
  );
});
