// Schedule precision and idle cost of the real service (dist/src/main.js) on scratch databases:
// - lag (actual_time − scheduled_time) p50/p95/max at `*/10 * * * * *` (≥ 6 slots) and `* * * * * *`
//   (≥ 25 slots), with 1 and 3 replicas, plus a check that each slot has exactly one run;
// - idle commits/s of one replica (pg_stat_database.xact_commit of its app + system database) over 30 s,
//   after DBOS's first minute (its scheduler polls every second then);
// - first-chunk start delay: `xyra ingest` enqueue → the chunk workflow's start, on an idle replica;
// - start-up to ready on a fresh database.
// Prints figures; asserts nothing (tests assert correctness, this measures).
//   node dist/bench/scheduleLag.js [--quick]   (BENCH_DATABASE_URL, default the local Postgres)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import pg from 'pg';

const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const MAIN = path.resolve('dist/src/main.js');
const CLI = path.resolve('dist/src/cli.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: SERVER });
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

async function scratch(
  label: string,
): Promise<{ name: string; appUrl: string; sysUrl: string; drop(): Promise<void> }> {
  const name = `bench_${label}_${randomBytes(3).toString('hex')}`;
  await withAdmin((c) => c.query(`create database ${name}`));
  return {
    name,
    appUrl: dbUrl(name),
    sysUrl: dbUrl(`${name}_dbos_sys`),
    drop: () =>
      withAdmin(async (c) => {
        await c.query(`drop database if exists ${name} with (force)`);
        await c.query(`drop database if exists ${name}_dbos_sys with (force)`);
      }),
  };
}

interface Replica {
  child: ChildProcess;
  ready: Promise<number>;
  onLine(fn: (line: string) => void): void;
}

function startReplica(env: Record<string, string>): Replica {
  const started = Date.now();
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const listeners: Array<(line: string) => void> = [];
  const ready = new Promise<number>((resolve) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('"xyra-scheduler ready"')) resolve(Date.now() - started);
      for (const l of listeners) l(line);
    });
  });
  return { child, ready, onLine: (fn) => listeners.push(fn) };
}

async function stopAll(replicas: Replica[]): Promise<void> {
  await Promise.all(
    replicas.map(
      (r) =>
        new Promise<void>((resolve) => {
          if (r.child.exitCode !== null) return resolve();
          r.child.on('exit', () => resolve());
          r.child.kill('SIGTERM');
        }),
    ),
  );
}

async function lagScenario(cron: string, slots: number, replicas: number, intervalMs: number): Promise<void> {
  const db = await scratch('lag');
  const started = Array.from({ length: replicas }, (_, i) =>
    startReplica({ DATABASE_URL: db.appUrl, BATCH_CRON: cron, EXECUTOR_ID: `bench-lag-${i}` }),
  );
  try {
    const readyMs = await Promise.all(started.map((r) => r.ready));
    // Measure slots strictly after every replica is ready (and one interval later: no start-up effects).
    const from = Date.now() + intervalMs;
    const until = from + slots * intervalMs + 500;
    await sleep(until - Date.now() + 1_500);
    await stopAll(started);
    const sys = new pg.Client({ connectionString: db.sysUrl });
    await sys.connect();
    const { rows } = await sys.query<{ workflow_uuid: string; value: string }>(
      `select workflow_uuid, value from dbos.workflow_events where key = 'batch_evaluation_status' and workflow_uuid like 'sched-evaluation-batch-2%'`,
    );
    const byExecutor = await sys.query<{ executor_id: string; n: string }>(
      `select executor_id, count(*) as n from dbos.workflow_status where workflow_uuid like 'sched-evaluation-batch-2%' group by 1 order by 1`,
    );
    await sys.end();
    const events = rows
      .map((r) => (JSON.parse(r.value) as { json: { scheduled_time: string; actual_time: string } }).json)
      .filter((e) => Date.parse(e.scheduled_time) >= from && Date.parse(e.scheduled_time) < until);
    const lags = events.map((e) => Date.parse(e.actual_time) - Date.parse(e.scheduled_time)).sort((a, b) => a - b);
    const distinctSlots = new Set(events.map((e) => e.scheduled_time)).size;
    console.log(
      `  ${cron.padEnd(16)} ${replicas} replica(s): ${lags.length} slots (${distinctSlots} distinct, one run each: ${distinctSlots === lags.length}), ` +
        `lag p50 ${percentile(lags, 50)} ms, p95 ${percentile(lags, 95)} ms, max ${lags.at(-1)} ms, min ${lags[0]} ms; ` +
        `ready in ${readyMs.join('/')} ms; runs by executor ${byExecutor.rows.map((r) => `${r.executor_id}:${r.n}`).join(' ')}`,
    );
  } finally {
    await stopAll(started);
    await db.drop();
  }
}

async function commitsOf(names: string[]): Promise<number> {
  return withAdmin(async (c) => {
    const { rows } = await c.query<{ n: string }>(
      `select coalesce(sum(xact_commit), 0) as n from pg_stat_database where datname = any($1)`,
      [names],
    );
    return Number(rows[0]!.n);
  });
}

async function idleAndFirstChunk(warmupMs: number, windowMs: number): Promise<void> {
  const db = await scratch('idle');
  const env: Record<string, string> = {
    DATABASE_URL: db.appUrl,
    EXECUTOR_ID: 'bench-idle',
    ...(process.env.BENCH_IDLE_ENV ? (JSON.parse(process.env.BENCH_IDLE_ENV) as Record<string, string>) : {}),
  };
  const replica = startReplica(env);
  try {
    const readyMs = await replica.ready;
    await sleep(warmupMs);
    const names = [db.name, `${db.name}_dbos_sys`];
    const before = await commitsOf(names);
    await sleep(windowMs);
    const after = await commitsOf(names);
    console.log(
      `  idle replica (default cron */2 * * * *, at most one slot falls in the window): ` +
        `${((after - before) / (windowMs / 1000)).toFixed(2)} commits/s over ${windowMs / 1000} s, ${warmupMs / 1000} s after ready (ready in ${readyMs} ms)`,
    );
    // First chunk: enqueue a small dataset on the idle replica and read when its chunk started.
    const delays: number[] = [];
    const dir = await mkdtemp(path.join(os.tmpdir(), 'xyra-first-chunk-'));
    for (let i = 0; i < 3; i++) {
      const file = path.join(dir, `first-chunk-${i}.json`);
      await copyFile(path.resolve('data/tasks_100.json'), file);
      const out = await new Promise<number | null>((resolve) => {
        const c = spawn(process.execPath, [CLI, 'ingest', file], {
          env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
          stdio: 'ignore',
        });
        c.on('exit', (code) => resolve(code));
      });
      if (out !== 0) throw new Error(`xyra ingest exited ${out}`);
      // Past the tasks queue's 10 s busy cool-down (idle polling again), at a random point of the poll cycle.
      await sleep(11_000 + Math.random() * 1_000);
    }
    const sys = new pg.Client({ connectionString: db.sysUrl });
    await sys.connect();
    const { rows } = await sys.query<{ created_at: string; started: string | null }>(
      `select created_at, started_at_epoch_ms as started from dbos.workflow_status where queue_name = 'tasks' order by created_at`,
    );
    await sys.end();
    // The first chunk of each ingestion: the earliest created row of each burst.
    const bursts: Array<{ created: number; started: number }> = [];
    for (const r of rows) {
      const created = Number(r.created_at);
      const last = bursts.at(-1);
      if (!last || created - last.created > 5_000) bursts.push({ created, started: Number(r.started) });
    }
    for (const b of bursts) delays.push(b.started - b.created);
    console.log(
      `  first-chunk start delay (xyra ingest enqueue → chunk started, idle replica): ${delays.map((d) => `${d} ms`).join(', ')}`,
    );
  } finally {
    await stopAll([replica]);
    await db.drop();
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  console.log(`schedule precision and idle cost (machine shared and loaded: figures are indicative)`);
  if (!process.argv.includes('--idle-only')) await lagScenario('*/10 * * * * *', quick ? 2 : 6, 1, 10_000);
  if (!process.argv.includes('--idle-only')) await lagScenario('*/10 * * * * *', quick ? 2 : 6, 3, 10_000);
  if (!process.argv.includes('--idle-only')) await lagScenario('* * * * * *', quick ? 5 : 25, 1, 1_000);
  if (!process.argv.includes('--idle-only')) await lagScenario('* * * * * *', quick ? 5 : 25, 3, 1_000);
  await idleAndFirstChunk(quick ? 5_000 : 60_000, quick ? 10_000 : 30_000);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
