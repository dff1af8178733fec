// Exactly once under failure and sharing: a service SIGKILLed mid-dataset and restarted, and two service
// processes draining the queue together, both leave every record as exactly one row in tasks or errors.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { readRecords, recordSchema } from '../src/pipeline/dataset.js';
import { writeDataset } from '../src/pipeline/generator.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import type { ServiceProcess } from './support/serviceProcess.js';
import { ingest, kinds, rowCounts, startPipelineService, tempDir } from './pipelineSupport.js';

// A generated dataset of 4,000 records: enough for a kill after 1,000 rows to leave most of it undone, and for two
// workers to share 80 chunks (the ten thousand of the shipped example only made each ingestion longer).
const RECORDS = 4_000;
const NAME = 'tasks_4k';
const PREFIX = `ingest:${NAME}:`;
/** Records the service fails on purpose (PIPELINE_FAIL_IDS): one before the kill, one after it. */
const FAIL_IDS = [50, RECORDS / 2];
let dir = '';
let DATASET = '';

beforeAll(async () => {
  dir = await tempDir('task-pipeline');
  DATASET = path.join(dir, `${NAME}.json`);
  await writeDataset(DATASET, RECORDS, 7, 'json');
});

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const running: ServiceProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop('SIGKILL')));
});

async function start(appUrl: string, env: Record<string, string>): Promise<ServiceProcess> {
  const service = await startPipelineService(appUrl, { PIPELINE_FAIL_IDS: FAIL_IDS.join(','), ...env });
  running.push(service);
  return service;
}

async function statusCounts(appUrl: string): Promise<Record<string, number>> {
  const rows = await query<{ status: string; n: string }>(
    systemDatabaseUrlOf(appUrl),
    'select status, count(*) as n from dbos.workflow_status where workflow_uuid like $1 group by status',
    [`${PREFIX}%`],
  );
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** Poll until `done` holds or the bound passes; the last value either way (the caller asserts on it). */
async function waitFor<T>(
  probe: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs: number,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (done(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** No chunk workflow of the dataset is still waiting or running. */
const settled = (s: Record<string, number>) => (s.PENDING ?? 0) + (s.ENQUEUED ?? 0) === 0 && Object.keys(s).length > 0;

/** Table contents, not step counters: a kill between a commit and its checkpoint legitimately re-runs a step. */
async function expectExactlyOnce(appUrl: string, summary: Awaited<ReturnType<typeof ingest>>['summary']) {
  expect(await rowCounts(appUrl, NAME)).toEqual({ tasks: RECORDS - 2, errors: 2 });
  expect(summary).toMatchObject({
    records: RECORDS,
    tasks: RECORDS - 2,
    errors: { total: 2, by_kind: kinds({ transform_failed: 2 }) },
    no_outcome: 0,
    failed_chunks: 0,
  });
  const [tasks] = await query<{ n: string; ids: string }>(
    appUrl,
    `select count(*) as n, count(distinct (data->>'id')::int) as ids from tasks
     where task_key = $2 || ':' || (data->>'id') and (data->>'id')::int between 1 and $1 and (data->>'id')::int <> all($3::int[])`,
    [RECORDS, NAME, FAIL_IDS],
  );
  expect(tasks).toEqual({ n: String(RECORDS - 2), ids: String(RECORDS - 2) });
  const errors = await query<{ key: string; kind: string; position: number }>(
    appUrl,
    "select message->>'task_key' as key, message->>'kind' as kind, (message->>'position')::int as position from errors order by 3",
  );
  expect(errors).toEqual(FAIL_IDS.map((id) => ({ key: `${NAME}:${id}`, kind: 'transform_failed', position: id })));
}

it('the shipped example data/tasks_10k.json is 10,000 records the pipeline accepts, ids 1 to 10,000 once each', async () => {
  // What ingesting the whole file here once held about it, read with the pipeline's own reader and record schema.
  const ids: unknown[] = [];
  for await (const { parsed } of readRecords('data/tasks_10k.json')) {
    expect(parsed.ok).toBe(true);
    const record = recordSchema.parse(parsed.ok ? parsed.value : undefined);
    ids.push(record.id);
  }
  expect(ids).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1));
});

it('SIGKILL mid-dataset, then restart: every record ends as exactly one row', async () => {
  const appUrl = await createMigratedTestDatabase('sigkill');
  const env = { EXECUTOR_ID: 'sigkill-replica', PIPELINE_CONCURRENCY: '2' };
  const first = await start(appUrl, env);
  const enqueued = await ingest(appUrl, DATASET, ['--chunk-size', '25']);
  expect(enqueued.code, enqueued.stderr).toBe(0);

  const atKill = await waitFor(
    () => rowCounts(appUrl),
    (c) => c.tasks >= 1_000,
    30_000,
  );
  await first.stop('SIGKILL');
  expect(atKill.tasks).toBeGreaterThanOrEqual(1_000);
  const afterKill = await rowCounts(appUrl);
  expect(afterKill.tasks + afterKill.errors).toBeLessThan(RECORDS);
  const statuses = await statusCounts(appUrl);
  expect((statuses.PENDING ?? 0) + (statuses.ENQUEUED ?? 0)).toBeGreaterThan(0);

  await start(appUrl, env); // same executor ID and version: recovers the PENDING chunks
  // The recovered chunks and the rest of the backlog: wait for every chunk to settle, with a bound generous for
  // a slow, loaded machine (how fast the backlog drains is measured in bench/, not here).
  expect(await waitFor(() => statusCounts(appUrl), settled, 600_000, 250)).toEqual({ SUCCESS: RECORDS / 25 });
  const finished = await ingest(appUrl, DATASET, ['--wait', '--json', '--chunk-size', '25']);
  expect(finished.code, finished.stderr).toBe(0);
  await expectExactlyOnce(appUrl, finished.summary);
}, 660_000);

it('two service processes drain the queue together: exactly once, and both did work', async () => {
  const appUrl = await createMigratedTestDatabase('two_workers');
  await Promise.all([
    start(appUrl, { EXECUTOR_ID: 'worker-a', PIPELINE_CONCURRENCY: '2' }),
    start(appUrl, { EXECUTOR_ID: 'worker-b', PIPELINE_CONCURRENCY: '2' }),
  ]);
  const r = await ingest(appUrl, DATASET, ['--wait', '--json', '--chunk-size', '50', '--timeout', '240']);
  expect(r.code, r.stderr).toBe(0);
  await expectExactlyOnce(appUrl, r.summary);
  const byExecutor = await query<{ executor_id: string; n: string }>(
    systemDatabaseUrlOf(appUrl),
    'select executor_id, count(*) as n from dbos.workflow_status where workflow_uuid like $1 group by executor_id',
    [`${PREFIX}%`],
  );
  const counts = Object.fromEntries(byExecutor.map((row) => [row.executor_id, Number(row.n)]));
  expect(Object.keys(counts).sort()).toEqual(['worker-a', 'worker-b']);
  expect((counts['worker-a'] ?? 0) + (counts['worker-b'] ?? 0)).toBe(RECORDS / 50);
  expect(Math.min(counts['worker-a'] ?? 0, counts['worker-b'] ?? 0)).toBeGreaterThan(0);
}, 300_000);

it('a fresh process dispatches a backlog it finds waiting at full speed, with no hint but the database', async () => {
  // Idle polling of one minute and one chunk at a time: at the idle speed the 30 chunks below would take half
  // an hour. The backlog is enqueued while no service runs, under another executor ID, so nothing in the new
  // process (no recovered chunk, no announcement) tells it there is work: only what it reads from the database.
  const appUrl = await createMigratedTestDatabase('fresh_backlog');
  const dir = await tempDir('fresh-backlog');
  const file = path.join(dir, 'backlog.json');
  await writeDataset(file, 600, 11, 'json');
  const env = { EXECUTOR_ID: 'fresh-replica', PIPELINE_POLL_MS: '60000', PIPELINE_CONCURRENCY: '1' };
  const first = await start(appUrl, env); // migrates both databases, registers the queue at the idle speed
  expect(await first.stop('SIGTERM')).toBe(0);
  running.splice(running.indexOf(first), 1);
  const enqueued = await ingest(appUrl, file, ['--chunk-size', '20']);
  expect(enqueued.code, enqueued.stderr).toBe(0);
  const [queue] = await query<{ ms: number }>(
    systemDatabaseUrlOf(appUrl),
    'select polling_interval_sec * 1000 as ms from dbos.queues where name = $1',
    ['tasks'],
  );
  expect(Number(queue?.ms)).toBe(60_000);

  await start(appUrl, env);
  const done = await waitFor(
    () => rowCounts(appUrl, 'backlog'),
    (c) => c.tasks + c.errors === 600,
    60_000,
  );
  expect(done).toEqual({ tasks: 599, errors: 1 }); // record 50 is in PIPELINE_FAIL_IDS
  await fs.rm(dir, { recursive: true, force: true });
}, 150_000);
