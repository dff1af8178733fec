// Many schedules (issue 14, section 3), the real service (dist/src/main.js) on scratch databases:
// - `xyra schedule apply` of N schedules: wall time;
// - N schedules at `*/10 * * * * *` on 2 replicas: lag (actual − scheduled) p50/p95/max and every slot once;
// - idle commits/s of one replica holding M hourly schedules (pg_stat_database.xact_commit, app + system db).
// Prints figures; asserts nothing.
//   node dist/bench/manySchedules.js [--herd N] [--idle M] [--seconds S] [--only herd,idle]   (BENCH_DATABASE_URL)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import pg from 'pg';

const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const MAIN = path.resolve('dist/src/main.js');
const CLI = path.resolve('dist/src/cli.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

async function admin<T>(fn: (c: pg.Client) => Promise<T>, url = SERVER): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

function dbUrl(name: string): string {
  const u = new URL(SERVER);
  u.pathname = `/${name}`;
  return u.toString();
}

async function scratch(label: string) {
  const name = `bench_${label}_${randomBytes(3).toString('hex')}`;
  await admin((c) => c.query(`create database ${name}`));
  return {
    name,
    appUrl: dbUrl(name),
    sysUrl: dbUrl(`${name}_dbos_sys`),
    drop: () =>
      admin(async (c) => {
        await c.query(`drop database if exists ${name} with (force)`);
        await c.query(`drop database if exists ${name}_dbos_sys with (force)`);
      }),
  };
}

/** What the replicas wrote to stdout (their log), for the figures: lines and bytes, and lines by message. */
const logStats = { lines: 0, bytes: 0, byMsg: new Map<string, number>() };

function startReplica(env: Record<string, string>): { child: ChildProcess; ready: Promise<void> } {
  // BENCH_NODE_FLAGS: extra node flags for the replicas (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, MAIN], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise<void>((resolve) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      logStats.lines += 1;
      logStats.bytes += line.length + 1;
      const msg = /"msg":"([^"]{0,60})/.exec(line)?.[1] ?? '?';
      logStats.byMsg.set(msg, (logStats.byMsg.get(msg) ?? 0) + 1);
      if (line.includes('"xyra-scheduler ready"')) resolve();
      if (line.includes('start late') || line.includes('started here'))
        console.log(`  ${env.EXECUTOR_ID ?? 'replica'}: ${line}`);
    });
  });
  return { child, ready };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.on('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; ms: number; stderr: string }> {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, ms: Date.now() - started, stderr })));
}

function applyFile(count: number, cron: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'xyra-bench-')), 'schedules.json');
  const schedules = Array.from({ length: count }, (_, i) => ({
    name: `s${String(i).padStart(4, '0')}`,
    cron,
    payload: { n: i },
  }));
  writeFileSync(file, JSON.stringify({ schedules }));
  return file;
}

async function commits(dbs: string[]): Promise<number> {
  return admin(async (c) => {
    const { rows } = await c.query<{ n: string }>(
      'select coalesce(sum(xact_commit), 0)::bigint as n from pg_stat_database where datname = any($1)',
      [dbs],
    );
    return Number(rows[0]!.n);
  });
}

async function herd(count: number, seconds: number): Promise<void> {
  const db = await scratch('herd');
  const env = { DATABASE_URL: db.appUrl, BATCH_CRON: '0 0 1 1 *' };
  const replicas = [
    startReplica({ ...env, EXECUTOR_ID: 'bench-herd-1' }),
    startReplica({ ...env, EXECUTOR_ID: 'bench-herd-2' }),
  ];
  try {
    await Promise.all(replicas.map((r) => r.ready));
    const applied = await cli(['schedule', 'apply', applyFile(count, '*/10 * * * * *')], env);
    console.log(
      `apply of ${count} schedules: ${applied.ms} ms (exit ${applied.code})${applied.code ? ` ${applied.stderr}` : ''}`,
    );
    const from = Math.ceil((Date.now() + 2_000) / 10_000) * 10_000; // the first full slot after the apply
    const until = from + seconds * 1_000;
    await sleep(until - Date.now() + 5_000);
    for (const r of replicas) await stop(r.child);
    const top = [...logStats.byMsg].sort((a, b) => b[1] - a[1]).slice(0, 5);
    console.log(`replica logs: ${logStats.lines} lines, ${logStats.bytes} bytes; most: ${JSON.stringify(top)}`);
    const { rows } = await admin(
      (c) =>
        c.query<{ workflow_uuid: string; value: string; executor_id: string }>(
          `select s.workflow_uuid, e.value, s.executor_id from dbos.workflow_status s
             join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid and e.key = 'batch_evaluation_status'
            where s.workflow_uuid like 'sched-s%'`,
        ),
      db.sysUrl,
    );
    const runs = rows
      .map((r) => ({
        id: r.workflow_uuid,
        executor: r.executor_id,
        ...(JSON.parse(r.value) as { json: { scheduled_time: string; actual_time: string; status: string } }).json,
      }))
      .filter((r) => Date.parse(r.scheduled_time) >= from && Date.parse(r.scheduled_time) < until);
    const lags = runs.map((r) => Date.parse(r.actual_time) - Date.parse(r.scheduled_time)).sort((a, b) => a - b);
    const expected = count * Math.round((until - from) / 10_000);
    const unique = new Set(runs.map((r) => r.id)).size;
    const byExecutor = new Map<string, number>();
    for (const r of runs) byExecutor.set(r.executor, (byExecutor.get(r.executor) ?? 0) + 1);
    const statuses = new Map<string, number>();
    for (const r of runs) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    console.log(
      `herd: ${count} schedules at */10 * * * * * on 2 replicas over ${seconds} s: runs ${runs.length} (unique ${unique}) of ${expected} slots; ` +
        `lag p50 ${percentile(lags, 50)} ms, p95 ${percentile(lags, 95)} ms, max ${lags.at(-1)} ms; by replica ${JSON.stringify(Object.fromEntries(byExecutor))}; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
  } finally {
    for (const r of replicas) await stop(r.child);
    await db.drop();
  }
}

async function idle(count: number, seconds: number): Promise<void> {
  const db = await scratch('idle');
  const env = { DATABASE_URL: db.appUrl, BATCH_CRON: '0 0 1 1 *' };
  const replica = startReplica({ ...env, EXECUTOR_ID: 'bench-idle-1' });
  try {
    await replica.ready;
    if (count > 0) {
      const applied = await cli(['schedule', 'apply', applyFile(count, '0 * * * *')], env);
      console.log(`apply of ${count} hourly schedules: ${applied.ms} ms (exit ${applied.code})`);
    }
    // Settle past start-up: DBOS's own schedule poll (it only runs our retention job) polls every second for
    // its first minute after launch, then at schedulerPollingIntervalMs (5 s); the steady state is what idles.
    await sleep(65_000);
    const dbs = [db.name, `${db.name}_dbos_sys`];
    const before = await commits(dbs);
    await sleep(seconds * 1_000);
    const after = await commits(dbs);
    console.log(
      `idle: 1 replica with ${count} hourly schedules (+ evaluation-batch): ${((after - before) / seconds).toFixed(2)} commits/s over ${seconds} s`,
    );
  } finally {
    await stop(replica.child);
    await db.drop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      herd: { type: 'string', default: '500' },
      idle: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '30' },
      only: { type: 'string', default: 'herd,idle' },
    },
  });
  const seconds = Number(values.seconds);
  const only = new Set(values.only.split(','));
  console.log(
    `uptime: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  if (only.has('herd')) await herd(Number(values.herd), seconds);
  if (only.has('idle')) {
    await idle(0, seconds);
    await idle(Number(values.idle), seconds);
  }
  console.log(
    `uptime: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
