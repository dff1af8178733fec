// `npm run bench` (part): how long the dashboard's slowest `/api` answer takes on a big history, and how much
// the page weighs.
//
//   node dist/bench/dashboardApi.js [--runs 100000] [--tasks 1000000]
//
// Starts the compiled service against a scratch database on BENCH_DATABASE_URL (default the local Postgres),
// then INSERTs synthetic rows straight into its tables: batch runs in DBOS's own format (status, event,
// output: one every 2 minutes back in time, 10 % failed, 5 % skipped), one ingestion of `--tasks` records in
// chunk workflows of 1,000, the `tasks` rows and 1 % of them as `errors`. Then it times every `/api` endpoint
// the page calls (median and max of 7 after a warm-up) and sums the bytes of the page's files. Figures are
// printed, never asserted.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PACKAGE_ROOT } from '../src/version.js';

const DEFAULT_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';
const SAMPLES = 7;
const CHUNK = 1_000;

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function run(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

function startService(env: NodeJS.ProcessEnv): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'dist/src/main.js')], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buffered = '';
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      buffered += c.toString();
      const m = /"healthPort":(\d+).*"msg":"xyra-scheduler ready"/.exec(buffered);
      if (m) {
        resolve({
          port: Number(m[1]),
          stop: () =>
            new Promise<void>((done) => {
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.once('exit', (code) =>
      reject(new Error(`service exited (${code}) before it was ready:\n${buffered.slice(-2000)}`)),
    );
  });
}

async function fill(systemUrl: string, appUrl: string, runs: number, tasks: number): Promise<void> {
  // Batch runs, newest at "now - 1 min", one per 2 minutes: the 24 h window holds 720 of them.
  await run(
    systemUrl,
    `with r as (
       select i, to_timestamp((extract(epoch from date_trunc('minute', now())) - 60 - i * 120)) as slot
         from generate_series(0, $1 - 1) i
     ), ins as (
       insert into dbos.workflow_status (workflow_uuid, status, name, class_name, executor_id, application_version,
                                         created_at, updated_at, started_at_epoch_ms, completed_at, serialization, queue_name)
       select 'sched-evaluation-batch-' || to_char(slot at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              'SUCCESS', 'trigger', 'EvaluationBatch', 'bench', '0.1.0',
              (extract(epoch from slot) * 1000)::bigint + 200, (extract(epoch from slot) * 1000)::bigint + 900,
              (extract(epoch from slot) * 1000)::bigint + 210, (extract(epoch from slot) * 1000)::bigint + 900, 'js_superjson', 'evaluation-batch'
         from r
       returning workflow_uuid
     ) select count(*) from ins`,
    [runs],
  );
  const event = `jsonb_build_object('workflow_id', s.workflow_uuid, 'status', x.outcome,
      'processed', case when x.outcome = 'completed' then 20 else 0 end, 'succeeded', case when x.outcome = 'completed' then 18 else 0 end,
      'failed', case when x.outcome = 'completed' then 2 else 0 end,
      'scheduled_time', substring(s.workflow_uuid from 24), 'actual_time', to_char(to_timestamp(s.started_at_epoch_ms / 1000.0) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
      || case when x.outcome = 'failed' then jsonb_build_object('error', 'HTTP 400: Bad Request')::jsonb else '{}'::jsonb end`;
  const outcomes = `(select s.*, case when (s.created_at / 120000) % 10 = 3 then 'failed' when (s.created_at / 120000) % 20 = 7 then 'skipped' else 'completed' end as outcome
      from dbos.workflow_status s where s.name = 'trigger') `;
  await run(
    systemUrl,
    `insert into dbos.workflow_events (workflow_uuid, key, value, serialization)
     select s.workflow_uuid, 'batch_evaluation_status', jsonb_build_object('json', (${event}), '__dbos_serializer', 'superjson')::text, 'js_superjson'
       from ${outcomes} s cross join lateral (select s.outcome) x`,
  );
  await run(
    systemUrl,
    `insert into dbos.workflow_output (workflow_uuid, output)
     select s.workflow_uuid, jsonb_build_object('json', jsonb_build_object('status', (${event}),
              'response', jsonb_build_object('status_code', 200, 'body_bytes', 80, 'duration_ms', 600, 'attempts', 1, 'total_duration_ms', 600))
              || case when x.outcome = 'skipped' then jsonb_build_object('skipped_reason', 'in_progress')::jsonb else '{}'::jsonb end,
            '__dbos_serializer', 'superjson')::text
       from ${outcomes} s cross join lateral (select s.outcome) x`,
  );
  // One ingestion: chunk workflows with their portable-JSON results (inputs left out: the page never reads them).
  const chunks = Math.ceil(tasks / CHUNK);
  await run(
    systemUrl,
    `insert into dbos.workflow_status (workflow_uuid, status, name, class_name, executor_id, created_at, updated_at, completed_at, serialization, queue_name)
     select 'ingest:bench-ds:0123456789abcdef0123:c${CHUNK}:' || i, 'SUCCESS', 'processChunk', 'TaskPipeline', 'bench',
            (extract(epoch from now()) * 1000)::bigint - 3600000 + i * 50, (extract(epoch from now()) * 1000)::bigint - 3600000 + i * 50 + 40,
            (extract(epoch from now()) * 1000)::bigint - 3600000 + i * 50 + 40, 'portable_json', 'tasks'
       from generate_series(0, $1 - 1) i;
     `,
    [chunks],
  );
  await run(
    systemUrl,
    `insert into dbos.workflow_output (workflow_uuid, output)
     select workflow_uuid, jsonb_build_object('records', ${CHUNK}, 'tasks', ${CHUNK - CHUNK / 100}, 'errors', ${CHUNK / 100},
                                            'insertedTasks', ${CHUNK - CHUNK / 100}, 'insertedErrors', ${CHUNK / 100})::text
       from dbos.workflow_status where workflow_uuid like 'ingest:bench-ds:%'`,
  );
  await run(
    appUrl,
    `insert into tasks (task_key, title, data)
     select 'bench-ds:' || i, 'Task ' || i, jsonb_build_object('id', i, 'title', 'TASK ' || i, 'tags', jsonb_build_array('ALPHA', 'BRAVO'))::jsonb
       from generate_series(0, $1 - 1) i where i % 100 <> 50`,
    [tasks],
  );
  await run(
    appUrl,
    `insert into errors (error_key, message, created_at)
     select 'bench-ds:' || i, jsonb_build_object('error', 'simulated transform failure for record id ' || i, 'kind',
              case when i % 300 = 50 then 'invalid_record' else 'transform_failed' end, 'task_key', 'bench-ds:' || i, 'attempts', 5)::jsonb,
            now() - interval '1 hour' + i * interval '3 ms'
       from generate_series(0, $1 - 1) i where i % 100 = 50`,
    [tasks],
  );
  await run(systemUrl, 'analyze');
  await run(appUrl, 'analyze');
}

async function time(url: string): Promise<{ medianMs: number; maxMs: number; bytes: number }> {
  const once = async () => {
    const t0 = performance.now();
    const res = await fetch(url);
    const body = await res.arrayBuffer();
    if (!res.ok) throw new Error(`${url}: ${res.status} ${Buffer.from(body).toString().slice(0, 300)}`);
    return { ms: performance.now() - t0, bytes: body.byteLength };
  };
  await once();
  const samples: number[] = [];
  let bytes = 0;
  for (let i = 0; i < SAMPLES; i++) {
    const s = await once();
    samples.push(s.ms);
    bytes = s.bytes;
  }
  samples.sort((a, b) => a - b);
  return { medianMs: samples[Math.floor(SAMPLES / 2)]!, maxMs: samples[SAMPLES - 1]!, bytes };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '100000' }, tasks: { type: 'string', default: '1000000' } },
  });
  const runs = Number(values.runs);
  const tasks = Number(values.tasks);
  const server = process.env.BENCH_DATABASE_URL ?? DEFAULT_URL;
  const name = `bench_dash_${randomBytes(4).toString('hex')}`;
  await run(withDatabase(server, 'postgres'), `create database ${name}`);
  const appUrl = withDatabase(server, name);
  const systemUrl = withDatabase(server, `${name}_dbos_sys`);
  const service = await startService({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: appUrl,
    BATCH_CRON: '0 0 1 1 *',
    PORT: '0',
    LOG_LEVEL: 'info',
    EXECUTOR_ID: 'bench-dashboard',
  });
  try {
    const t0 = performance.now();
    await fill(systemUrl, appUrl, runs, tasks);
    console.log(
      `filled ${runs.toLocaleString()} batch runs, ${tasks.toLocaleString()} task rows in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
    const base = `http://127.0.0.1:${service.port}`;
    const endpoints = [
      '/api/schedule',
      '/api/runs?limit=120',
      '/api/stats?since=24h',
      '/api/datasets',
      '/api/errors?limit=20',
    ];
    console.log('| endpoint | median ms | max ms | bytes |\n|---|---|---|---|');
    let slowest = { endpoint: '', ms: 0 };
    for (const e of endpoints) {
      const t = await time(`${base}${e}`);
      console.log(`| ${e} | ${t.medianMs.toFixed(0)} | ${t.maxMs.toFixed(0)} | ${t.bytes.toLocaleString()} |`);
      if (t.medianMs > slowest.ms) slowest = { endpoint: e, ms: t.medianMs };
    }
    let weight = 0;
    for (const f of ['/', '/app.js', '/style.css', '/favicon.svg']) weight += (await time(`${base}${f}`)).bytes;
    console.log(`slowest /api answer: ${slowest.endpoint} ${slowest.ms.toFixed(0)} ms (median of ${SAMPLES})`);
    console.log(`page weight: ${(weight / 1024).toFixed(1)} KB (HTML + JS + CSS + icon, uncompressed, no framework)`);
  } finally {
    await service.stop();
    if (!process.env.BENCH_KEEP) {
      await run(withDatabase(server, 'postgres'), `drop database if exists ${name}_dbos_sys with (force)`);
      await run(withDatabase(server, 'postgres'), `drop database if exists ${name} with (force)`);
    }
  }
}

await main();
