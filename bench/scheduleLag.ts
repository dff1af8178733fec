// Schedule lag and start-up time of the real service: starts dist/src/main.js on a scratch database with a
// 1-second cron, lets SLOTS slots run, then reads scheduled/actual times back from the events DBOS stored.
// Prints figures; asserts nothing (tests assert correctness, this measures).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import pg from 'pg';

const SLOTS = Number(process.env.BENCH_SLOTS ?? 25);
const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const db = `bench_lag_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: SERVER });
  await admin.connect();
  await admin.query(`create database ${db}`);
  const appUrl = new URL(SERVER);
  appUrl.pathname = `/${db}`;

  const started = Date.now();
  const child = spawn(process.execPath, [path.resolve('dist/src/main.js')], {
    env: { ...process.env, DATABASE_URL: appUrl.toString(), BATCH_CRON: '* * * * * *', PORT: '0', LOG_LEVEL: 'info', EXECUTOR_ID: 'bench-lag' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let readyMs = NaN;
  let completed = 0;
  await new Promise<void>((resolve) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('"xyra-scheduler ready"')) readyMs = Date.now() - started;
      if (line.includes('"batch completed"') && ++completed >= SLOTS) resolve();
    });
  });
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));

  const sys = new pg.Client({ connectionString: `${appUrl.toString()}_dbos_sys` });
  await sys.connect();
  const { rows } = await sys.query<{ value: string }>(
    `select value from dbos.workflow_events where key = 'batch_evaluation_status' and workflow_uuid like 'sched-%'`,
  );
  await sys.end();
  const lags = rows
    .map((r) => (JSON.parse(r.value) as { json: { scheduled_time: string; actual_time: string } }).json)
    .map((e) => Date.parse(e.actual_time) - Date.parse(e.scheduled_time))
    .sort((a, b) => a - b);
  await admin.query(`drop database ${db} with (force)`);
  await admin.query(`drop database ${db}_dbos_sys with (force)`);
  await admin.end();

  console.log(`schedule lag over ${lags.length} one-second slots (queue poll ${process.env.BATCH_QUEUE_POLL_MS ?? 'default'} ms):`);
  console.log(`  start-up to ready: ${readyMs} ms (process spawn to "xyra-scheduler ready", fresh database)`);
  console.log(`  lag p50 ${percentile(lags, 50)} ms, p95 ${percentile(lags, 95)} ms, max ${lags.at(-1)} ms, min ${lags[0]} ms`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
