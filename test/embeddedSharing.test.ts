// The embedded Postgres is shared by the processes started from one directory: whoever started it never stops
// it under another user (a second service, a CLI command); the last live user out stops it.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { joinEmbeddedPostgres } from '../src/runtime/embeddedPostgres.js';
import { isReady, READY_TIMEOUT_MS, startServiceProcess, type ServiceProcess } from './support/serviceProcess.js';

let dataDir: string;
const running: ServiceProcess[] = [];

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-sharing-'));
  await fs.chmod(dataDir, 0o755); // the postgres OS user must reach its data directory when we run as root
});

afterAll(async () => {
  for (const p of running) await p.stop('SIGTERM');
  await fs.rm(dataDir, { recursive: true, force: true });
});

function start(executorId: string): ServiceProcess {
  const p = startServiceProcess({ XYRA_DATA_DIR: dataDir, BATCH_CRON: '*/2 * * * * *', EXECUTOR_ID: executorId });
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

describe('the shared embedded Postgres', () => {
  it('is shared: the service that started it leaves it running for another, the last live user stops it (SIGKILLed ones do not count)', async () => {
    const a = start('embedded-a');
    await a.waitForLog(isReady, READY_TIMEOUT_MS);
    const pid = await postmasterPid();
    const b = start('embedded-b');
    const c = start('embedded-c');
    await Promise.all([b.waitForLog(isReady, READY_TIMEOUT_MS), c.waitForLog(isReady, READY_TIMEOUT_MS)]);
    expect(
      b.logs.some((l) => l.msg === 'embedded Postgres: joined the server another process of this directory runs'),
    ).toBe(true);
    c.child.kill('SIGKILL'); // a user that never leaves properly
    await c.exited;

    expect(await a.stop('SIGTERM')).toBe(0);
    expect(a.logs.some((l) => l.msg === 'embedded Postgres stopped')).toBe(false);
    expect(await alive(pid!)).toBe(true);
    // B keeps working on it: a batch that started after A left completes.
    const after = b.logs.length;
    await b.waitForLog((l) => completed(l) && b.logs.indexOf(l) >= after, 30_000);

    expect(await b.stop('SIGTERM')).toBe(0);
    expect(b.logs.some((l) => l.msg === 'embedded Postgres stopped')).toBe(true);
    expect(await alive(pid!)).toBe(false);
  }, 120_000); // three services on a shared 2-core machine

  it('a CLI command that joined it keeps it running after the service leaves, and stops it when done', async () => {
    const service = start('embedded-a');
    await service.waitForLog(isReady, READY_TIMEOUT_MS);
    const pid = await postmasterPid();
    // What every `xyra` command does with the embedded default (resolveDatabasesForClient), in this process.
    const cli = await joinEmbeddedPostgres(dataDir, createLogger('silent'));
    expect(cli).toBeDefined();
    expect(await service.stop('SIGTERM')).toBe(0);
    expect(await alive(pid!)).toBe(true);
    const client = new pg.Client({ connectionString: cli!.url });
    await client.connect();
    expect((await client.query<{ n: number }>('select 1 as n')).rows).toEqual([{ n: 1 }]);
    await client.end();
    await cli!.release();
    expect(await alive(pid!)).toBe(false);
  });
});
