// `npm run bench`: the pipeline end to end through the real service path, on a scratch database.
//
//   node dist/bench/run.js [--records N] [--seed S] [--chunk-size N]
//
// Starts the compiled service (dist/src/main.js) against a scratch database on BENCH_DATABASE_URL (default
// the local Postgres; the embedded one if that is unreachable), feeds it a generated dataset with
// `xyra ingest --wait`, and prints records/s end to end, Postgres commits per record, and the service's
// peak RSS. Then it INSERTs the same transformed rows into a scratch table with plain multi-row statements,
// as the physical reference. Figures are printed, never asserted.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createLogger } from '../src/logger.js';
import { parseElement, readElements } from '../src/pipeline/dataset.js';
import { writeDataset } from '../src/pipeline/generator.js';
import { uppercaseDeep, type JsonValue } from '../src/pipeline/transform.js';
import { startEmbeddedPostgres } from '../src/runtime/embeddedPostgres.js';
import { PACKAGE_ROOT } from '../src/version.js';

const DEFAULT_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';
const REFERENCE_BATCH = 1_000;

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function adminQuery(serverUrl: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl, 'postgres'), connectionTimeoutMillis: 3_000 });
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
    return { url, stop: async () => undefined, kind: `${new URL(url).host} (PostgreSQL ${String(v.rows[0]?.server_version)})` };
  } catch (e) {
    console.log(`${new URL(url).host} unreachable (${(e as Error).message}); using the embedded Postgres`);
    const embedded = await startEmbeddedPostgres(path.join(PACKAGE_ROOT, '.bench-data'), createLogger('warn'));
    return { url: embedded.url, stop: () => embedded.release(), kind: 'embedded' };
  }
}

async function commits(serverUrl: string, dbs: string[]): Promise<number> {
  const r = await adminQuery(serverUrl, 'select coalesce(sum(xact_commit), 0)::bigint as n from pg_stat_database where datname = any($1)', [dbs]);
  return Number(r.rows[0]?.n);
}

/** Stats reach pg_stat_database asynchronously; ask the server to flush them, then read. */
async function settledCommits(serverUrl: string, dbs: string[]): Promise<number> {
  await new Promise((r) => setTimeout(r, 1_200));
  return commits(serverUrl, dbs);
}

function peakRssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

function startService(env: NodeJS.ProcessEnv): Promise<{ pid: number; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'dist/src/main.js')], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (c: Buffer) => {
      buffered += c.toString();
      if (buffered.includes('"xyra-scheduler ready"')) {
        child.stdout.off('data', onData);
        child.stdout.resume(); // keep draining its logs
        resolve({
          pid: child.pid ?? 0,
          stop: () =>
            new Promise((done) => {
              child.once('exit', (code) => done(code));
              child.kill('SIGTERM');
            }),
        });
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`service exited (${code}) before it was ready:\n${buffered.slice(-2000)}`)));
  });
}

/** `xyra ingest --wait --json`, with the CLI's own peak RSS (its first pass holds one Map entry per distinct id). */
function runIngest(file: string, chunkSize: number | undefined, env: NodeJS.ProcessEnv): Promise<{ ms: number; summary: string; cliRssMb: number }> {
  const args = [path.join(PACKAGE_ROOT, 'dist/src/cli.js'), 'ingest', file, '--wait', '--json'];
  if (chunkSize) args.push('--chunk-size', String(chunkSize));
  const startedAt = performance.now();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let cliRssMb = 0;
  // VmHWM is gone once the process exits: sample it while it runs.
  const sampler = setInterval(() => {
    try {
      if (child.pid) cliRssMb = Math.max(cliRssMb, peakRssMb(child.pid));
    } catch {
      // exited between two samples
    }
  }, 100);
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => {
      clearInterval(sampler);
      if (code === 0) resolve({ ms: performance.now() - startedAt, summary: out.trim(), cliRssMb });
      else reject(new Error(`ingest exited ${code}`));
    }),
  );
}

/** The physical reference: the same transformed rows, multi-row INSERTs on one connection, no framework. */
async function referenceInsert(dbUrl: string, file: string, name: string): Promise<number> {
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    await client.query('create table reference_tasks (id bigserial primary key, task_key text unique, title text, data jsonb not null, created_at timestamptz default now())');
    const startedAt = performance.now();
    let batch: Array<{ task_key: string; title: string | null; data: JsonValue }> = [];
    const flush = async () => {
      if (batch.length === 0) return;
      await client.query(
        `insert into reference_tasks (task_key, title, data)
         select task_key, title, data from jsonb_to_recordset($1::jsonb) as r(task_key text, title text, data jsonb)
         on conflict (task_key) do nothing`,
        [JSON.stringify(batch)],
      );
      batch = [];
    };
    for await (const element of readElements(file)) {
      const parsed = parseElement(element.text);
      if (!parsed.ok) continue;
      const record = parsed.value as { id?: string | number; title?: string };
      batch.push({ task_key: `${name}:${record.id ?? element.index}`, title: record.title ?? null, data: uppercaseDeep(parsed.value as JsonValue) });
      if (batch.length === REFERENCE_BATCH) await flush();
    }
    await flush();
    return performance.now() - startedAt;
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { records: { type: 'string', default: '100000' }, seed: { type: 'string', default: '42' }, 'chunk-size': { type: 'string' } },
  });
  const records = Number(values.records);
  const seed = Number(values.seed);
  const chunkSize = values['chunk-size'] ? Number(values['chunk-size']) : undefined;

  const dataDir = path.join(PACKAGE_ROOT, 'data');
  const file = path.join(dataDir, `generated_${records}_s${seed}.json`);
  if (!fs.existsSync(file)) {
    console.log(`generating ${file}`);
    await writeDataset(file, records, seed, 'json');
  }
  const name = path.basename(file, '.json');

  const server = await serverUrl();
  const db = `xyra_bench_${randomBytes(3).toString('hex')}`;
  const sysDb = `${db}_dbos_sys`;
  await adminQuery(server.url, `create database ${db}`);
  const dbUrl = withDatabase(server.url, db);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: dbUrl,
    EXECUTOR_ID: 'bench',
    PORT: '0',
    LOG_LEVEL: 'info',
    XYRA_DATA_DIR: path.join(os.tmpdir(), 'xyra-bench-data'),
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('PIPELINE_'))),
  };
  try {
    const service = await startService(env);
    const before = await settledCommits(server.url, [db, sysDb]);
    const ingest = await runIngest(file, chunkSize, env);
    const after = await settledCommits(server.url, [db, sysDb]);
    const rssMb = peakRssMb(service.pid);
    await service.stop();
    const referenceMs = await referenceInsert(dbUrl, file, name);

    const e2e = records / (ingest.ms / 1000);
    const reference = records / (referenceMs / 1000);
    console.log(`\nserver: ${server.kind}, cores: ${os.cpus().length}, node ${process.version}`);
    console.log(`dataset: ${records} records (${(fs.statSync(file).size / 1e6).toFixed(1)} MB), seed ${seed}`);
    console.log(`settings: chunk=${chunkSize ?? process.env.PIPELINE_CHUNK_SIZE ?? 'default'} concurrency=${process.env.PIPELINE_CONCURRENCY ?? 'default'} poll_ms=${process.env.PIPELINE_POLL_MS ?? 'default'}`);
    console.log(`ingest summary: ${ingest.summary}`);
    console.log(`end to end:       ${Math.round(e2e)} records/s (${(ingest.ms / 1000).toFixed(2)} s, enqueue + processing)`);
    console.log(`commits/record:   ${((after - before) / records).toFixed(4)} (${after - before} commits, app + system db, incl. idle polling)`);
    console.log(`service peak RSS: ${rssMb} MB`);
    console.log(`ingest CLI peak RSS: ${ingest.cliRssMb} MB`);
    console.log(`reference INSERT: ${Math.round(reference)} records/s (${(referenceMs / 1000).toFixed(2)} s, ${REFERENCE_BATCH} rows/statement)`);
    console.log(`ratio e2e/reference: ${(e2e / reference).toFixed(2)}`);
  } finally {
    await adminQuery(server.url, `drop database if exists ${db} with (force)`).catch(() => undefined);
    await adminQuery(server.url, `drop database if exists ${sysDb} with (force)`).catch(() => undefined);
    await server.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
