// `npm run bench`: the pipeline end to end through the real service path, on scratch databases, against COPY.
//
//   node dist/bench/run.js [--records N,M] [--drain-records N] [--replica-records N] [--seed S] [--chunk-size N] [--only e2e,drain,replicas]
//
// Starts the compiled service (dist/src/main.js) against scratch databases on BENCH_DATABASE_URL (default the
// local Postgres; the embedded one if that is unreachable) and prints, figures only (nothing is asserted):
//   e2e       for each size (default 100,000 and 1,000,000): `xyra ingest --wait` from spawn to exit, the
//             service's and the CLI's peak RSS, commits per record; then, on the same database, COPY of the same
//             records (as tasks rows: key, title, transformed data, into a table shaped like `tasks`) as the
//             physical reference, and the ratio.
//   drain     (1,000,000 records by default: at 200,000 the whole rest drains in under 2 s, and a restart's fixed
//             costs, a cold first batch of chunks and the chunks in flight at the kill done again, are ~10 % of it)
//             one ingestion processed until about 40 % of its records have an outcome, the service SIGKILLed and
//             restarted with the same executor ID: outcomes/s after the restart against the same records' rate in
//             another run of the same ingestion that was not killed (and the first 40 %'s rate, for reference).
//   replicas  two services on one database drain one ingestion: rate against one replica of the same size,
//             chunks per replica, every record once.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { createLogger } from '../src/logger.js';
import { parseElement, readElements } from '../src/pipeline/dataset.js';
import { writeDataset } from '../src/pipeline/generator.js';
import { recordId, taskKey } from '../src/pipeline/identity.js';
import { uppercaseDeep, type JsonValue } from '../src/pipeline/transform.js';
import { startEmbeddedPostgres } from '../src/runtime/embeddedPostgres.js';
import { PACKAGE_ROOT } from '../src/version.js';

const DEFAULT_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function adminQuery(
  serverUrl: string,
  sql: string,
  params: unknown[] = [],
  db = 'postgres',
): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl, db), connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

/** BENCH_DATABASE_URL (or the local default) when reachable, else the embedded Postgres. */
async function serverUrl(): Promise<{ url: string; stop: () => Promise<void>; kind: string }> {
  const url = process.env.BENCH_DATABASE_URL ?? DEFAULT_URL;
  try {
    const v = await adminQuery(url, 'show server_version');
    return {
      url,
      stop: async () => undefined,
      kind: `${new URL(url).host} (PostgreSQL ${String(v.rows[0]?.server_version)})`,
    };
  } catch (e) {
    console.log(`${new URL(url).host} unreachable (${(e as Error).message}); using the embedded Postgres`);
    const embedded = await startEmbeddedPostgres(path.join(PACKAGE_ROOT, '.bench-data'), createLogger('warn'));
    return { url: embedded.url, stop: () => embedded.release(), kind: 'embedded' };
  }
}

async function commits(serverUrl: string, dbs: string[]): Promise<number> {
  const r = await adminQuery(
    serverUrl,
    'select coalesce(sum(xact_commit), 0)::bigint as n from pg_stat_database where datname = any($1)',
    [dbs],
  );
  return Number(r.rows[0]?.n);
}

/** Stats reach pg_stat_database asynchronously: wait a moment, then read. */
async function settledCommits(serverUrl: string, dbs: string[]): Promise<number> {
  await new Promise((r) => setTimeout(r, 1_200));
  return commits(serverUrl, dbs);
}

function peakRssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

interface Service {
  pid: number;
  child: ChildProcess;
  readyAt: number;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

/** The V8 flags of the service's start command in dbos-config.yaml: the service runs as it is deployed. */
const SERVICE_FLAGS = ['--max-semi-space-size=2', '--max-old-space-size=512'];

function startService(env: NodeJS.ProcessEnv): Promise<Service> {
  const child = spawn(process.execPath, [...SERVICE_FLAGS, path.join(PACKAGE_ROOT, 'dist/src/main.js')], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (c: Buffer) => {
      buffered += c.toString();
      if (buffered.includes('"xyra-scheduler ready"')) {
        child.stdout?.off('data', onData);
        child.stdout?.resume(); // keep draining its logs
        resolve({
          pid: child.pid ?? 0,
          child,
          readyAt: performance.now(),
          stop: () => {
            child.kill('SIGTERM');
            return exited;
          },
          kill: async () => {
            child.kill('SIGKILL');
            await exited;
          },
        });
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`service exited (${code}) before it was ready:\n${buffered.slice(-2000)}`)),
    );
  });
}

/** The V8 flags of the `xyra` bin's first line (src/cli.ts): the CLI runs as users run it. */
const CLI_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=512'];

/** `xyra ingest FILE …` with the CLI's own peak RSS (sampled while it runs: VmHWM is gone once it exits). */
function runIngest(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ms: number; summary: string; cliRssMb: number }> {
  const startedAt = performance.now();
  const child = spawn(
    process.execPath,
    [...CLI_FLAGS, path.join(PACKAGE_ROOT, 'dist/src/cli.js'), 'ingest', file, ...args],
    { env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  let cliRssMb = 0;
  const sampler = setInterval(() => {
    try {
      if (child.pid) cliRssMb = Math.max(cliRssMb, peakRssMb(child.pid));
    } catch {
      // exited between two samples
    }
  }, 50);
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => {
      clearInterval(sampler);
      if (code === 0)
        resolve({ ms: performance.now() - startedAt, summary: out.trim().split('\n').pop() ?? '', cliRssMb });
      else reject(new Error(`ingest exited ${code}: ${out.slice(-500)}`));
    }),
  );
}

const COPY_SPECIAL = /[\\\n\r\t]/g;
const copyValue = (s: string) =>
  s.replace(COPY_SPECIAL, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'));

/**
 * The physical reference: the same records as tasks rows (key, title, transformed data) streamed with COPY into
 * a table shaped like `tasks` (bigserial key, unique task_key, JSONB data), on one connection, no framework.
 * Reading, parsing and transforming the file is part of it, as it is of the pipeline.
 */
async function copyReference(dbUrl: string, file: string, name: string): Promise<number> {
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    await client.query(
      'create table reference_tasks (id bigserial primary key, task_key text unique, title text, data jsonb not null, created_at timestamptz default now())',
    );
    const startedAt = performance.now();
    async function* rows(): AsyncGenerator<string> {
      let batch = '';
      for await (const element of readElements(file)) {
        const parsed = parseElement(element.text);
        if (!parsed.ok) continue;
        const record = parsed.value as { title?: string | null };
        const key = taskKey(name, element.position, recordId(parsed.value));
        const title = typeof record.title === 'string' ? copyValue(record.title) : '\\N';
        batch += `${copyValue(key)}\t${title}\t${copyValue(JSON.stringify(uppercaseDeep(parsed.value as JsonValue)))}\n`;
        if (batch.length >= 256 * 1024) {
          yield batch;
          batch = '';
        }
      }
      if (batch) yield batch;
    }
    await pipeline(
      Readable.from(rows()),
      client.query(copyFrom('copy reference_tasks (task_key, title, data) from stdin')),
    );
    return performance.now() - startedAt;
  } finally {
    await client.end();
  }
}

interface Scratch {
  db: string;
  url: string;
  env: NodeJS.ProcessEnv;
}

async function scratch(server: string, executorId: string): Promise<Scratch> {
  const db = `xyra_bench_${randomBytes(3).toString('hex')}`;
  await adminQuery(server, `create database ${db}`);
  const url = withDatabase(server, db);
  return {
    db,
    url,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: url,
      EXECUTOR_ID: executorId,
      PORT: '0',
      LOG_LEVEL: 'info',
      XYRA_DATA_DIR: path.join(os.tmpdir(), 'xyra-bench-data'),
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('PIPELINE_'))),
    },
  };
}

async function dropScratch(server: string, s: Scratch): Promise<void> {
  await adminQuery(server, `drop database if exists ${s.db} with (force)`).catch(() => undefined);
  await adminQuery(server, `drop database if exists ${s.db}_dbos_sys with (force)`).catch(() => undefined);
}

async function dataset(records: number, seed: number): Promise<{ file: string; name: string }> {
  const file = path.join(PACKAGE_ROOT, 'data', `generated_${records}_s${seed}.json`);
  if (!fs.existsSync(file)) {
    console.log(`generating ${file}`);
    await writeDataset(file, records, seed, 'json');
  }
  return { file, name: path.basename(file, '.json') };
}

const chunkArgs = (chunkSize: number | undefined) => (chunkSize ? ['--chunk-size', String(chunkSize)] : []);

async function outcomes(url: string): Promise<number> {
  const r = await adminQuery(
    url,
    'select (select count(*) from tasks) + (select count(*) from errors) as n',
    [],
    new URL(url).pathname.slice(1),
  );
  return Number(r.rows[0]?.n);
}

async function e2e(server: string, records: number, seed: number, chunkSize: number | undefined): Promise<number> {
  const { file, name } = await dataset(records, seed);
  const s = await scratch(server, 'bench');
  try {
    const service = await startService(s.env);
    const before = await settledCommits(server, [s.db, `${s.db}_dbos_sys`]);
    const ingest = await runIngest(file, ['--wait', '--json', ...chunkArgs(chunkSize)], s.env);
    const after = await settledCommits(server, [s.db, `${s.db}_dbos_sys`]);
    const rssMb = peakRssMb(service.pid);
    await service.stop();
    const referenceMs = await copyReference(s.url, file, name);
    const rate = records / (ingest.ms / 1000);
    const reference = records / (referenceMs / 1000);
    const summary = JSON.parse(ingest.summary) as {
      chunks: number;
      chunk_size: number;
      tasks: number;
      errors: { total: number };
    };
    console.log(
      `\n[e2e] ${records} records (${(fs.statSync(file).size / 1e6).toFixed(1)} MB), chunk ${summary.chunk_size} (${summary.chunks} chunks), tasks ${summary.tasks}, errors ${summary.errors.total}`,
    );
    console.log(
      `  end to end:          ${Math.round(rate)} records/s (${(ingest.ms / 1000).toFixed(2)} s, xyra ingest --wait from spawn to exit)`,
    );
    console.log(
      `  COPY reference:      ${Math.round(reference)} records/s (${(referenceMs / 1000).toFixed(2)} s, same records as tasks rows, same database)`,
    );
    console.log(`  ratio e2e/COPY:      ${(rate / reference).toFixed(3)}`);
    console.log(`  service peak RSS:    ${rssMb} MB`);
    console.log(`  ingest CLI peak RSS: ${ingest.cliRssMb} MB`);
    console.log(
      `  commits/record:      ${((after - before) / records).toFixed(4)} (${after - before} commits, app + system database)`,
    );
    return rate;
  } finally {
    await dropScratch(server, s);
  }
}

/** Waits until `url` holds at least `n` outcomes; the instant it saw them. */
async function outcomesReach(url: string, n: number): Promise<{ at: number; outcomes: number }> {
  for (;;) {
    const seen = await outcomes(url);
    if (seen >= n) return { at: performance.now(), outcomes: seen };
    await new Promise((r) => setTimeout(r, 50));
  }
}

const KILL_AT = 0.4;

interface AtMark {
  s: Scratch;
  service: Service;
  /** Outcomes once the enqueue-only CLI returned, and that instant. */
  base: number;
  enqueuedAt: number;
  /** The instant 40 % of the records had an outcome, and how many had then. */
  mark: { at: number; outcomes: number };
}

/** One ingestion on scratch databases, enqueued (no --wait) to a service, run until 40 % have an outcome. */
async function runToMark<T>(
  server: string,
  file: string,
  records: number,
  chunkSize: number | undefined,
  then: (run: AtMark) => Promise<T>,
): Promise<T> {
  const s = await scratch(server, 'bench-drain');
  try {
    const service = await startService(s.env);
    await runIngest(file, chunkArgs(chunkSize), s.env); // enqueue only
    const enqueuedAt = performance.now();
    const base = await outcomes(s.url);
    const mark = await outcomesReach(s.url, base + records * KILL_AT);
    return await then({ s, service, base, enqueuedAt, mark });
  } finally {
    await dropScratch(server, s);
  }
}

/** Chunk workflows per executor (those finished at or after `sinceEpochMs`, when given). */
async function chunksByExecutor(server: string, s: Scratch, sinceEpochMs = 0): Promise<string> {
  const r = await adminQuery(
    server,
    `select executor_id, count(*)::int as n from dbos.workflow_status where workflow_uuid like 'ingest:%' and updated_at >= $1 group by executor_id order by 1`,
    [sinceEpochMs],
    `${s.db}_dbos_sys`,
  );
  return r.rows.map((row: { executor_id: string; n: number }) => `${row.executor_id} ${row.n}`).join(', ');
}

/**
 * The same ingestion three times, each on its own databases: once uninterrupted (the clean rate of the records
 * after the first 40 %: the tasks table and its index are as big then in every run), once SIGKILLed at 40 % and
 * restarted with the same executor ID, once joined at 40 % by a second replica.
 */
async function drain(server: string, records: number, seed: number, chunkSize: number | undefined): Promise<void> {
  const { file } = await dataset(records, seed);
  const { cleanHead, cleanRest } = await runToMark(server, file, records, chunkSize, async (run) => {
    const done = await outcomesReach(run.s.url, records);
    await run.service.stop();
    return {
      cleanHead: (run.mark.outcomes - run.base) / ((run.mark.at - run.enqueuedAt) / 1000),
      cleanRest: (records - run.mark.outcomes) / ((done.at - run.mark.at) / 1000),
    };
  });
  await runToMark(server, file, records, chunkSize, async ({ s, service: killed, mark }) => {
    await killed.kill();
    const afterKill = await outcomes(s.url);
    const tSpawn = performance.now();
    const service = await startService(s.env);
    const tReady = service.readyAt;
    const atReady = await outcomes(s.url);
    const { at: tDone } = await outcomesReach(s.url, records);
    await service.stop();
    const fromReady = (records - atReady) / ((tDone - tReady) / 1000);
    const fromSpawn = (records - afterKill) / ((tDone - tSpawn) / 1000);
    console.log(
      `\n[drain] ${records} records, SIGKILL at ${mark.outcomes} outcomes, restart with the same executor ID`,
    );
    console.log(`  clean, first 40 % (enqueued → 40 %):  ${Math.round(cleanHead)} records/s`);
    console.log(`  clean, the rest (40 % → done):        ${Math.round(cleanRest)} records/s (another run, not killed)`);
    console.log(
      `  after restart (ready → done):         ${Math.round(fromReady)} records/s = ${(fromReady / cleanRest).toFixed(2)} × the clean rest`,
    );
    console.log(
      `  after restart (spawn → done):         ${Math.round(fromSpawn)} records/s = ${(fromSpawn / cleanRest).toFixed(2)} × the clean rest (start-up ${((tReady - tSpawn) / 1000).toFixed(2)} s)`,
    );
  });
  // A replica joining at 40 %: the first one keeps running; the rest's rate from the joiner's spawn.
  await runToMark(server, file, records, chunkSize, async ({ s, service: first, mark }) => {
    const joiner = await startService({ ...s.env, EXECUTOR_ID: 'bench-joiner' });
    const atReady = await outcomes(s.url);
    const { at: tDone } = await outcomesReach(s.url, records);
    await Promise.all([first.stop(), joiner.stop()]);
    const rest = (records - mark.outcomes) / ((tDone - mark.at) / 1000);
    const fromReady = (records - atReady) / ((tDone - joiner.readyAt) / 1000);
    const chunks = await chunksByExecutor(server, s, Math.floor(performance.timeOrigin + joiner.readyAt));
    console.log(
      `  a second replica joining at 40 %:     ${Math.round(rest)} records/s = ${(rest / cleanRest).toFixed(2)} × the clean rest (40 % → done, spawned at 40 %); ${Math.round(fromReady)} records/s from its ready; chunks finished after it was ready: ${chunks}`,
    );
  });
}

async function replicas(
  server: string,
  records: number,
  seed: number,
  chunkSize: number | undefined,
  oneReplicaRate: number | undefined,
): Promise<void> {
  const { file, name } = await dataset(records, seed);
  const s = await scratch(server, 'bench-a');
  try {
    const a = await startService(s.env);
    const b = await startService({ ...s.env, EXECUTOR_ID: 'bench-b' });
    const ingest = await runIngest(file, ['--wait', '--json', ...chunkArgs(chunkSize)], s.env);
    await Promise.all([a.stop(), b.stop()]);
    const rate = records / (ingest.ms / 1000);
    const once = await adminQuery(
      server,
      `select count(*)::int as tasks, count(distinct task_key)::int as keys, (select count(*)::int from errors) as errors from tasks where starts_with(task_key, $1)`,
      [`${name}:`],
      s.db,
    );
    const row = once.rows[0] as { tasks: number; keys: number; errors: number };
    console.log(`\n[replicas] 2 replicas, ${records} records`);
    console.log(
      `  end to end:     ${Math.round(rate)} records/s${oneReplicaRate ? ` = ${(rate / oneReplicaRate).toFixed(2)} × one replica (${Math.round(oneReplicaRate)} records/s)` : ''}`,
    );
    console.log(`  chunks:         ${await chunksByExecutor(server, s)}`);
    console.log(
      `  every record once: tasks ${row.tasks}, distinct keys ${row.keys}, errors ${row.errors} (records ${records})`,
    );
  } finally {
    await dropScratch(server, s);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      records: { type: 'string', default: '100000,1000000' },
      'drain-records': { type: 'string', default: '1000000' },
      'replica-records': { type: 'string', default: '1000000' },
      seed: { type: 'string', default: '42' },
      'chunk-size': { type: 'string' },
      only: { type: 'string', default: 'e2e,drain,replicas' },
    },
  });
  const sizes = values.records.split(',').map(Number);
  const seed = Number(values.seed);
  const chunkSize = values['chunk-size'] ? Number(values['chunk-size']) : undefined;
  const only = new Set(values.only.split(','));
  const server = await serverUrl();
  console.log(
    `server: ${server.kind}, cores: ${os.cpus().length}, node ${process.version}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `settings: chunk=${chunkSize ?? process.env.PIPELINE_CHUNK_SIZE ?? 'default'} concurrency=${process.env.PIPELINE_CONCURRENCY ?? 'default'} poll_ms=${process.env.PIPELINE_POLL_MS ?? 'default'}`,
  );
  try {
    const rates = new Map<number, number>();
    if (only.has('e2e')) for (const n of sizes) rates.set(n, await e2e(server.url, n, seed, chunkSize));
    if (only.has('drain')) await drain(server.url, Number(values['drain-records']), seed, chunkSize);
    const replicaRecords = Number(values['replica-records']);
    if (only.has('replicas')) await replicas(server.url, replicaRecords, seed, chunkSize, rates.get(replicaRecords));
    console.log(
      `\nload average at the end: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await server.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
