// Retention cost: how long one bounded delete batch holds its transaction, and how fast a backlog of finished
// workflows is pruned. Starts the real service once on a scratch database (DBOS creates its system schema), fills
// the system tables with BENCH_WORKFLOWS finished workflows shaped like chunk workflows (input, output, 3 steps,
// 1 event with history) plus 100 ENQUEUED ones, then runs the same delete the scheduled cleanup runs until
// nothing is due. Prints figures; asserts nothing.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import pg from 'pg';
import { RETENTION_BATCH_SIZE } from '../src/ops/retention.js';
import { deleteFinishedWorkflows } from '../src/runtime/dbosInternals.js';

const WORKFLOWS = Number(process.env.BENCH_WORKFLOWS ?? 20_000);
const INPUT_BYTES = Number(process.env.BENCH_INPUT_BYTES ?? 2_000);
const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

function urlOf(db: string): string {
  const u = new URL(SERVER);
  u.pathname = `/${db}`;
  return u.toString();
}

async function createSystemSchema(appUrl: string): Promise<void> {
  const child = spawn(process.execPath, [path.resolve('dist/src/main.js')], {
    env: {
      ...process.env,
      DATABASE_URL: appUrl,
      PORT: '0',
      LOG_LEVEL: 'info',
      EXECUTOR_ID: 'bench-retention',
      OTEL_METRICS_EXPORTER: 'none',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) =>
    readline
      .createInterface({ input: child.stdout })
      .on('line', (l) => l.includes('"xyra-scheduler ready"') && resolve()),
  );
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
}

async function main(): Promise<void> {
  const db = `bench_ret_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: SERVER });
  await admin.connect();
  await admin.query(`create database ${db}`);
  try {
    await createSystemSchema(urlOf(db));
    const sys = new pg.Client({ connectionString: urlOf(`${db}_dbos_sys`) });
    await sys.connect();
    const old = Date.now() - 86_400_000;
    const payload = JSON.stringify('x'.repeat(INPUT_BYTES));
    const fillStarted = Date.now();
    await sys.query(
      `insert into dbos.workflow_status (workflow_uuid, status, name, created_at, updated_at, completed_at)
       select 'bench-' || g, 'SUCCESS', 'processChunk', $1, $1, $1 from generate_series(1, $2) g`,
      [old, WORKFLOWS],
    );
    await sys.query(
      `insert into dbos.workflow_status (workflow_uuid, status, name, queue_name, created_at, updated_at)
       select 'bench-enqueued-' || g, 'ENQUEUED', 'processChunk', 'parked', $1, $1 from generate_series(1, 100) g`,
      [old],
    );
    await sys.query(
      `insert into dbos.workflow_input (workflow_uuid, inputs) select workflow_uuid, $1 from dbos.workflow_status`,
      [payload],
    );
    await sys.query(
      `insert into dbos.workflow_output (workflow_uuid, output) select workflow_uuid, '{"ok":true}' from dbos.workflow_status where status = 'SUCCESS'`,
    );
    await sys.query(
      `insert into dbos.operation_outputs (workflow_uuid, function_id, function_name, output)
       select workflow_uuid, f, 'step', '{"rows":1000}' from dbos.workflow_status, generate_series(0, 2) f where status = 'SUCCESS'`,
    );
    await sys.query(
      `insert into dbos.workflow_events (workflow_uuid, key, value) select workflow_uuid, 'progress', '{}' from dbos.workflow_status where status = 'SUCCESS'`,
    );
    await sys.query(
      `insert into dbos.workflow_events_history (workflow_uuid, function_id, key, value) select workflow_uuid, 3, 'progress', '{}' from dbos.workflow_status where status = 'SUCCESS'`,
    );
    await sys.query('analyze');
    const fillMs = Date.now() - fillStarted;

    const batchMs: number[] = [];
    let deleted = 0;
    const started = Date.now();
    for (;;) {
      const t = process.hrtime.bigint();
      const n = await deleteFinishedWorkflows(sys, new Date(Date.now() - 3_600_000), RETENTION_BATCH_SIZE);
      batchMs.push(Number(process.hrtime.bigint() - t) / 1e6);
      deleted += n;
      if (n < RETENTION_BATCH_SIZE) break;
    }
    const totalMs = Date.now() - started;
    const left = await sys.query<{ status: string; n: string }>(
      `select status, count(*) as n from dbos.workflow_status group by 1`,
    );
    await sys.end();
    const sorted = [...batchMs].sort((a, b) => a - b);
    console.log(
      `retention: ${WORKFLOWS} finished workflows (input ${INPUT_BYTES} B, 3 steps, 1 event) filled in ${fillMs} ms`,
    );
    console.log(
      `  deleted ${deleted} in ${batchMs.length} batches of ≤${RETENTION_BATCH_SIZE}: ${totalMs} ms, ${Math.round((deleted / totalMs) * 1000)} workflows/s`,
    );
    console.log(
      `  one batch (= one transaction): p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`,
    );
    console.log(`  left: ${left.rows.map((r) => `${r.status} ${r.n}`).join(', ')}`);
  } finally {
    await admin.query(`drop database if exists ${db}_dbos_sys with (force)`).catch(() => undefined);
    await admin.query(`drop database if exists ${db} with (force)`).catch(() => undefined);
    await admin.end();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
