// A private Postgres cluster a test (or bench) may stop and start, as a managed database's failover or a
// maintenance restart does: the project's embedded Postgres (what a fresh machine has, via `npm ci`),
// initialised in a temporary directory, then stopped/started with its own pg_ctl on the same port.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { z } from 'zod';
import { createLogger } from '../../src/logger.js';
import { withDatabase } from '../../src/runtime/databases.js';
import { embeddedPostgresBinaries, startEmbeddedPostgres } from '../../src/runtime/embeddedPostgres.js';

const run = promisify(execFile);

export interface PrivatePostgres {
  /** URL of the `postgres` database. */
  url: string;
  /** A new, empty database on this cluster; its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stop the server (`pg_ctl stop -m fast`: every connection is cut, as in a failover). */
  stop(): Promise<void>;
  /** Start it again on the same port. */
  start(): Promise<void>;
  /** Stop it for good and remove its files. */
  destroy(): Promise<void>;
}

const stateSchema = z.object({ port: z.number(), pgData: z.string() });

async function ids(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const [u, g] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number.parseInt(u.stdout, 10), gid: Number.parseInt(g.stdout, 10) };
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-outage-pg-'));
  await fs.chmod(dir, 0o755); // the postgres OS user (when we are root) must reach the cluster
  const embedded = await startEmbeddedPostgres(dir, createLogger('silent'));
  const state = stateSchema.parse(JSON.parse(await fs.readFile(path.join(dir, 'postgres.json'), 'utf8')));
  // The server's own binaries: as root in a clone the postgres OS user cannot enter, a relocated copy (the
  // package's pg_ctl there fails with EACCES).
  const { pg_ctl } = await embeddedPostgresBinaries();
  const as = await ids();
  const logFile = path.join(path.dirname(state.pgData), 'postgres.log');
  const pgCtl = (args: string[]) => run(pg_ctl, args, as);
  let running = true;
  return {
    url: embedded.url,
    async createDatabase(name) {
      const admin = new pg.Client({ connectionString: embedded.url });
      await admin.connect();
      try {
        await admin.query(`create database ${pg.escapeIdentifier(name)}`);
      } finally {
        await admin.end();
      }
      return withDatabase(embedded.url, name);
    },
    async stop() {
      await pgCtl(['stop', '-D', state.pgData, '-m', 'fast', '-w', '-t', '60']);
      running = false;
    },
    async start() {
      await pgCtl([
        'start',
        '-D',
        state.pgData,
        '-w',
        '-t',
        '60',
        '-l',
        logFile,
        '-o',
        `-p ${state.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200`,
      ]);
      running = true;
    },
    async destroy() {
      if (running)
        await pgCtl(['stop', '-D', state.pgData, '-m', 'immediate', '-w', '-t', '60']).catch(() => undefined);
      running = false;
      await fs.rm(dir, { recursive: true, force: true });
      if (!state.pgData.startsWith(dir)) await fs.rm(path.dirname(state.pgData), { recursive: true, force: true });
    },
  };
}
