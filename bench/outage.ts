// A Postgres outage under a running replica with default settings (FAILOVER_AFTER=30s): how long after
// Postgres is back until /readyz answers 200 again, for outages of the given lengths. The cluster is the
// project's embedded Postgres in a temporary directory, stopped and started with its own pg_ctl (`-m fast`:
// every connection cut, as in a managed failover). Prints figures; asserts nothing.
//   npm run build && node dist/bench/outage.js [--outages 25,90]
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import pg from 'pg';
import { createLogger } from '../src/logger.js';
import { withDatabase } from '../src/runtime/databases.js';
import { embeddedPostgresBinaries, startEmbeddedPostgres } from '../src/runtime/embeddedPostgres.js';
import { PACKAGE_ROOT } from '../src/version.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const { values } = parseArgs({ options: { outages: { type: 'string', default: '25,90' } } });
const outages = values.outages.split(',').map((s) => Number(s.trim()));

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-bench-outage-'));
  await fs.chmod(dir, 0o755);
  const embedded = await startEmbeddedPostgres(dir, createLogger('silent'));
  const state = JSON.parse(await fs.readFile(path.join(dir, 'postgres.json'), 'utf8')) as {
    port: number;
    pgData: string;
  };
  const bin = await embeddedPostgresBinaries(); // the server's own (relocated as root in a private clone)
  const ids =
    process.getuid?.() === 0
      ? {
          uid: Number((await run('id', ['-u', 'postgres'])).stdout),
          gid: Number((await run('id', ['-g', 'postgres'])).stdout),
        }
      : {};
  const pgCtl = (args: string[]) => run(bin.pg_ctl, args, ids);
  const stop = () => pgCtl(['stop', '-D', state.pgData, '-m', 'fast', '-w', '-t', '60']);
  const start = () =>
    pgCtl([
      'start',
      '-D',
      state.pgData,
      '-w',
      '-t',
      '60',
      '-l',
      path.join(path.dirname(state.pgData), 'postgres.log'),
      '-o',
      `-p ${state.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200`,
    ]);
  const admin = new pg.Client({ connectionString: embedded.url });
  await admin.connect();
  await admin.query('create database bench_outage');
  await admin.end();

  const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'dist/src/main.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      PORT: '0',
      LOG_LEVEL: 'info',
      EXECUTOR_ID: 'bench-outage',
      DATABASE_URL: withDatabase(embedded.url, 'bench_outage'),
      BATCH_CRON: '*/5 * * * * *',
      XYRA_DATA_DIR: path.join(dir, 'data'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  for (const s of [child.stdout, child.stderr]) {
    readline.createInterface({ input: s }).on('line', (l) => {
      try {
        lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    });
  }
  let exitCode: number | null = null;
  child.on('exit', (c) => (exitCode = c));
  const waitFor = async (pred: (l: Record<string, unknown>) => boolean, ms: number) => {
    const end = Date.now() + ms;
    for (;;) {
      const found = lines.find(pred);
      if (found) return found;
      if (Date.now() > end || exitCode !== null) throw new Error(`no such log line (exit ${exitCode})`);
      await sleep(20);
    }
  };
  const port = Number((await waitFor((l) => l.msg === 'xyra-scheduler ready', 120_000)).healthPort);
  const readyz = async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status ?? 0;

  console.log(`\nPostgres outage under one replica (FAILOVER_AFTER=30s default, ${os.cpus().length} cores)`);
  console.log('| outage | process stayed up | /readyz during | Postgres back → claim confirmed | → /readyz 200 |');
  console.log('|---|---|---|---|---|');
  for (const seconds of outages) {
    await sleep(3_000);
    const seen = lines.length;
    await stop();
    await sleep(seconds * 1_000);
    const during = await readyz();
    await start();
    const back = Date.now();
    const reopened = await waitFor(
      (l) => lines.indexOf(l) >= seen && String(l.msg).startsWith('database reachable again'),
      120_000,
    );
    let status = await readyz();
    while (status !== 200) {
      await sleep(25);
      status = await readyz();
    }
    const ready = Date.now();
    const confirmMs = Date.parse(String(reopened.time)) - back;
    console.log(
      `| ${seconds} s | ${exitCode === null ? 'yes' : `no (exit ${String(exitCode)})`} | ${during} | ${confirmMs} ms | ${ready - back} ms |`,
    );
  }
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  await embedded.release();
  await pgCtl(['stop', '-D', state.pgData, '-m', 'immediate']).catch(() => undefined);
  await fs.rm(dir, { recursive: true, force: true });
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
