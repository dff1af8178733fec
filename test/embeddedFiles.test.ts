// The embedded Postgres's files hold its password: postgres.json and the server log are 0600 whatever they
// were, initdb's password file never lands world-readable in /tmp and is gone afterwards, an unrelated pg/
// folder is never deleted, and a stale lock naming a reused PID (our own, in a fresh container) is taken over
// at once instead of waited on for 120 s.
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/runtime/embeddedPostgres.js';
import { withFileLock } from '../src/runtime/fileLock.js';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-pgfiles-'));
  await fs.chmod(root, 0o755); // as root, the postgres OS user must reach the data directory
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const mode = async (p: string) => (await fs.stat(p)).mode & 0o777;
const tmpPasswordFiles = async () => (await fs.readdir(os.tmpdir())).filter((f) => f.startsWith('pg-password-'));

describe('embedded Postgres files', () => {
  it('state file and log are 0600 (also when they were not), no password file is left anywhere', async () => {
    const dataDir = path.join(root, 'data');
    await fs.mkdir(dataDir, { mode: 0o755 });
    const before = await tmpPasswordFiles();
    let pg: EmbeddedPostgres | undefined = await startEmbeddedPostgres(dataDir, createLogger('silent'));
    try {
      expect(await tmpPasswordFiles()).toEqual(before);
      await expect(fs.access(path.join(dataDir, '.initdb-tmp'))).rejects.toThrow();
      expect(await mode(path.join(dataDir, 'postgres.json'))).toBe(0o600);
      expect(await mode(path.join(dataDir, 'postgres.log'))).toBe(0o600);
      expect(await mode(path.join(dataDir, 'pg'))).toBe(0o700);
      await pg.release();
      pg = undefined;
      // Loosened by hand (or by an older version): made private again at the next start.
      await fs.chmod(path.join(dataDir, 'postgres.json'), 0o644);
      await fs.chmod(path.join(dataDir, 'postgres.log'), 0o644);
      pg = await startEmbeddedPostgres(dataDir, createLogger('silent'));
      expect(await mode(path.join(dataDir, 'postgres.json'))).toBe(0o600);
      expect(await mode(path.join(dataDir, 'postgres.log'))).toBe(0o600);
    } finally {
      await pg?.release();
    }
  }, 120_000);

  // main.ts loads the service's modules once this is called: everything before pg_ctl must be done by then.
  it('says when only the server itself is left to wait for: just before pg_ctl starts it, once', async () => {
    const dataDir = path.join(root, 'starting');
    await fs.mkdir(dataDir, { mode: 0o755 });
    const pidFile = path.join(dataDir, 'pg', 'postmaster.pid');
    const calls: Array<{ state: boolean; pidFile: boolean }> = [];
    const onStarting = () =>
      calls.push({
        state: existsSync(path.join(dataDir, 'postgres.json')),
        pidFile: existsSync(pidFile),
      });
    const first = await startEmbeddedPostgres(dataDir, createLogger('silent'), undefined, undefined, onStarting);
    try {
      // Called before the server ran (no postmaster.pid yet), after the cluster and its state were ready.
      expect(calls).toEqual([{ state: true, pidFile: false }]);
      await expect(fs.access(pidFile)).resolves.toBeUndefined();
      // Joining the running server starts nothing: not called.
      const joined = await startEmbeddedPostgres(dataDir, createLogger('silent'), undefined, undefined, onStarting);
      await joined.release();
      expect(calls).toHaveLength(1);
    } finally {
      await first.release();
    }
  }, 120_000);

  it('never deletes a pg/ folder that is not a cluster of ours', async () => {
    const dataDir = path.join(root, 'unrelated');
    await fs.mkdir(path.join(dataDir, 'pg'), { recursive: true, mode: 0o755 });
    await fs.writeFile(path.join(dataDir, 'pg', 'notes.txt'), 'mine');
    await expect(startEmbeddedPostgres(dataDir, createLogger('silent'))).rejects.toThrow(
      /holds no Postgres cluster \(no PG_VERSION\): move it away/,
    );
    expect(await fs.readFile(path.join(dataDir, 'pg', 'notes.txt'), 'utf8')).toBe('mine');
  });
});

describe('file lock', () => {
  it('takes over a stale lock naming our own PID (reused in a fresh container) at once', async () => {
    const file = path.join(root, 'own.lock');
    await fs.writeFile(file, String(process.pid));
    // A 3 s bound instead of 120 s: waiting on the stale lock would time out and reject.
    expect(await withFileLock(file, async () => 'got it', undefined, 3_000)).toBe('got it');
  });

  it('takes over a lock whose PID is alive but started at another time (reused by another process)', async () => {
    const file = path.join(root, 'reused.lock');
    await fs.writeFile(file, `${process.ppid} 1`);
    expect(await withFileLock(file, async () => 'got it', undefined, 3_000)).toBe('got it');
  });

  it('still waits for a live holder, and for our own lock while we hold it', async () => {
    const file = path.join(root, 'held.lock');
    await withFileLock(file, async () => {
      await expect(withFileLock(file, async () => 'nested', undefined, 500)).rejects.toThrow(
        /timed out waiting for lock/,
      );
    });
  });
});
