// Nothing erased, nothing enqueued under the wrong content: a chunk an operator cancelled stays cancelled on
// re-ingest (and `ingest --wait` reports it instead of hanging) until `--retry-cancelled` forks it; a file
// changed between the two passes of ingest stops before the first chunk whose content differs.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DatasetError } from '../src/errors.js';
import { createLogger } from '../src/logger.js';
import { writeDataset } from '../src/pipeline/generator.js';
import { chunkWorkflowId, enqueueDataset } from '../src/pipeline/ingest.js';
import { withDbosClient } from '../src/runtime/dbosClient.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { runCli, type ServiceProcess } from './support/serviceProcess.js';
import { ingest, rowCounts, serviceEnv, startPipelineService, tempDir } from './pipelineSupport.js';

let appUrl: string;
let dir: string;
let service: ServiceProcess | undefined;

beforeAll(async () => {
  appUrl = await createTestDatabase('rerun');
  dir = await tempDir('rerun');
  // Start once so both databases are migrated, then stop: what is enqueued next waits in the queue.
  const first = await startPipelineService(appUrl);
  expect(await first.stop('SIGTERM')).toBe(0);
});

afterAll(async () => {
  await service?.stop('SIGKILL');
  await fs.rm(dir, { recursive: true, force: true });
});

async function inProcess<T>(
  fn: (client: Parameters<Parameters<typeof withDbosClient>[2]>[0], db: pg.Client) => Promise<T>,
): Promise<T> {
  const db = new pg.Client({ connectionString: appUrl });
  await db.connect();
  try {
    return await withDbosClient(systemDatabaseUrlOf(appUrl), createLogger('warn', new PassThrough()), (client) =>
      fn(client, db),
    );
  } finally {
    await db.end();
  }
}

async function workflows(prefix: string): Promise<Array<{ id: string; status: string; forked_from: string | null }>> {
  return query(
    systemDatabaseUrlOf(appUrl),
    'select workflow_uuid as id, status, forked_from from dbos.workflow_status where workflow_uuid like $1 order by workflow_uuid',
    [`${prefix}%`],
  );
}

/** `xyra datasets --json`, the entry of one dataset. */
async function datasetReport(dataset: string): Promise<Record<string, unknown> | undefined> {
  const r = await runCli(['datasets', '--json', '--limit', '10'], serviceEnv(appUrl));
  expect(r.code, r.stderr).toBe(0);
  const all = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  return all.find((d) => d.dataset === dataset);
}

it('a file changed between the two passes: fails with a clear message, stages and enqueues nothing', async () => {
  const file = path.join(dir, 'changing.json');
  await writeDataset(file, 30, 3, 'json');
  const text = await fs.readFile(file, 'utf8');
  const error = await inProcess((client, db) =>
    enqueueDataset(client, db, file, {
      chunkSize: 10,
      // Same length, other content in record 15 (chunk 1): the whole-file hash would only notice at the end.
      afterScan: () => fs.writeFile(file, text.replace('"id":15,', '"id":95,')),
    }).then(
      () => undefined,
      (e: unknown) => e,
    ),
  );
  expect(error).toBeInstanceOf(DatasetError);
  expect((error as Error).message).toMatch(/changed while it was being ingested/);
  // The second pass stages in one transaction that checks the bytes' hash before it commits: nothing is left.
  expect(await workflows('ingest:changing:')).toEqual([]);
  expect(await query(appUrl, "select 1 from ingestions where dataset = 'changing'")).toEqual([]);
});

it('a cancelled chunk stays cancelled (ingest --wait says so and exits 1) until --retry-cancelled forks it', async () => {
  const file = path.join(dir, 'cancelled.json');
  await writeDataset(file, 30, 4, 'json');
  const plan = await inProcess(async (client, db) => {
    const p = await enqueueDataset(client, db, file, { chunkSize: 10 });
    await client.cancelWorkflow(chunkWorkflowId(p, 1)); // as `dbos workflow cancel` does
    return p;
  });
  service = await startPipelineService(appUrl);

  const kept = await ingest(appUrl, file, ['--wait', '--json', '--chunk-size', '10', '--timeout', '60']);
  expect(kept.code).toBe(1);
  expect(kept.summary).toMatchObject({
    records: 30,
    tasks: 20,
    errors: { total: 0 },
    no_outcome: 10,
    cancelled_chunks: 1,
    failed_chunks: 0,
  });
  expect(kept.stderr).toMatch(/1 chunk\(s\) stay cancelled/);
  expect(kept.stderr).toContain(`10 of 30 records have no outcome`);
  expect(kept.stderr).toContain(`${chunkWorkflowId(plan, 1)} (cancelled)`);
  expect(await rowCounts(appUrl, 'cancelled')).toEqual({ tasks: 20, errors: 0 });
  expect(await datasetReport('cancelled')).toMatchObject({
    records: 30,
    records_done: 20,
    tasks: 20,
    errors: { total: 0 },
    chunks: { total: 3, done: 2, failed: 0, cancelled: 1 },
    state: 'failed',
    chunk_size: 10,
  });

  const retried = await ingest(appUrl, file, [
    '--wait',
    '--json',
    '--chunk-size',
    '10',
    '--retry-cancelled',
    '--timeout',
    '60',
  ]);
  expect(retried.code, retried.stderr).toBe(0);
  expect(retried.summary).toMatchObject({ records: 30, tasks: 30, no_outcome: 0, cancelled_chunks: 0 });
  expect(await rowCounts(appUrl, 'cancelled')).toEqual({ tasks: 30, errors: 0 });
  const report = await datasetReport('cancelled');
  expect(report).toMatchObject({
    dataset: 'cancelled',
    file_name: file,
    sha256_prefix: plan.sha256.slice(0, 12),
    records: 30,
    records_done: 30,
    tasks: 30,
    errors: { total: 0, by_kind: { invalid_record: 0, transform_failed: 0, duplicate_id: 0, key_conflict: 0 } },
    chunks: { total: 3, done: 3, failed: 0, cancelled: 0 },
    state: 'done',
  });
  expect(Date.parse(String(report?.finished_at))).toBeGreaterThanOrEqual(Date.parse(String(report?.started_at)));
  const chunk1 = (await workflows(plan.workflowPrefix)).filter((w) => w.id.startsWith(chunkWorkflowId(plan, 1)));
  expect(chunk1).toEqual([
    { id: chunkWorkflowId(plan, 1), status: 'CANCELLED', forked_from: null },
    { id: chunkWorkflowId(plan, 1, 1), status: 'SUCCESS', forked_from: chunkWorkflowId(plan, 1) },
  ]);
});
