// `xyra ingest` against a real service process: row counts, the error path, malformed input, idempotent
// re-ingest, and a transient lock on `tasks` that the insert step's retries ride out.
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/pipeline/generator.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import type { ServiceProcess } from './support/serviceProcess.js';
import { ingest, rowCounts, startPipelineService, tempDir } from './pipelineSupport.js';

let appUrl: string;
let service: ServiceProcess;
let dir: string;

async function workflowCount(prefix: string): Promise<number> {
  const [row] = await query<{ n: string }>(
    systemDatabaseUrlOf(appUrl),
    'select count(*) as n from dbos.workflow_status where workflow_uuid like $1',
    [`${prefix}%`],
  );
  return Number(row?.n);
}

/** Hold an exclusive lock on `tasks` (as a long migration or a stuck session would); returns its release. */
async function lockTasks(): Promise<() => Promise<void>> {
  const holder = new pg.Client({ connectionString: appUrl });
  await holder.connect();
  await holder.query('begin');
  await holder.query('lock table tasks in access exclusive mode');
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await holder.query('commit');
    await holder.end();
  };
}

beforeAll(async () => {
  appUrl = await createTestDatabase('ingest');
  dir = await tempDir('ingest');
  service = await startPipelineService(appUrl, { PIPELINE_FAIL_IDS: '50' });
});

afterAll(async () => {
  await service?.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('xyra ingest', () => {
  it('ingests the 100-record dataset: 99 tasks, record 50 in errors with its error, attempts and original record', async () => {
    const r = await ingest(appUrl, 'data/tasks_100.json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ dataset: 'tasks_100', records: 100, tasks: 99, errors: 1, inserted_tasks: 99, inserted_errors: 1, failed_chunks: 0 });
    expect(await rowCounts(appUrl, 'tasks_100:')).toEqual({ tasks: 99, errors: 1, both: 0 });

    const original = (JSON.parse(await fs.readFile('data/tasks_100.json', 'utf8')) as Array<Record<string, unknown>>);
    const [error] = await query<{ error_key: string; message: Record<string, unknown> }>(appUrl, 'select error_key, message from errors');
    expect(error?.error_key).toBe('tasks_100:50');
    expect(error?.message).toEqual({
      kind: 'transform_failed',
      error: 'simulated transform failure for record id 50',
      task_key: 'tasks_100:50',
      record: original[49],
      attempts: 5, // PIPELINE_STEP_MAX_ATTEMPTS default
    });

    const [task] = await query<{ title: string; data: Record<string, unknown> }>(appUrl, "select title, data from tasks where task_key = 'tasks_100:7'");
    const seven = original[6] as { title: string; tags: string[]; priority: number };
    expect(task?.title).toBe(seven.title);
    expect(task?.data).toMatchObject({ id: 7, title: seven.title.toUpperCase(), tags: seven.tags.map((t) => t.toUpperCase()), priority: seven.priority });
  });

  it('re-ingesting the same file creates no duplicates and no new workflows', async () => {
    const before = await workflowCount('ingest:tasks_100:');
    const [maxBefore] = await query<{ max: string }>(appUrl, 'select max(id) as max from tasks');
    const r = await ingest(appUrl, 'data/tasks_100.json');
    expect(r.code, r.stderr).toBe(0);
    expect(await workflowCount('ingest:tasks_100:')).toBe(before);
    expect(await rowCounts(appUrl, 'tasks_100:')).toEqual({ tasks: 99, errors: 1, both: 0 });
    const [maxAfter] = await query<{ max: string }>(appUrl, 'select max(id) as max from tasks');
    expect(maxAfter?.max).toBe(maxBefore?.max);
  });

  it('with a different chunk size the same file re-runs but still inserts nothing twice', async () => {
    const r = await ingest(appUrl, 'data/tasks_100.json', ['--wait', '--json', '--chunk-size', '7']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ chunks: 15, records: 100, tasks: 99, errors: 1, inserted_tasks: 0, inserted_errors: 0 });
    expect(await rowCounts(appUrl, 'tasks_100:')).toEqual({ tasks: 99, errors: 1, both: 0 });
  });

  it('turns malformed records into invalid_record errors while the rest of the dataset runs', async () => {
    const r = await ingest(appUrl, 'data/malformed_records.json', ['--wait', '--json', '--chunk-size', '3']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ records: 10, tasks: 4, errors: 6 });
    const tasks = await query<{ task_key: string }>(appUrl, "select task_key from tasks where task_key like 'malformed_records:%' order by task_key");
    expect(tasks.map((t) => t.task_key)).toEqual(['malformed_records:101', 'malformed_records:106', 'malformed_records:110', 'malformed_records:6']);
    const errors = await query<{ error_key: string; message: { kind: string; record: unknown; error: string } }>(
      appUrl,
      "select error_key, message from errors where error_key like 'malformed_records:%' order by error_key",
    );
    expect(errors.map((e) => [e.error_key, e.message.kind])).toEqual([
      ['malformed_records:1', 'invalid_record'],
      ['malformed_records:103', 'invalid_record'],
      ['malformed_records:104', 'invalid_record'],
      ['malformed_records:4', 'invalid_record'],
      ['malformed_records:7', 'invalid_record'],
      ['malformed_records:8', 'invalid_record'],
    ]);
    expect(errors[0]?.message.record).toBe('a string is not a record');
    expect(errors[1]?.message).toMatchObject({ record: { id: 103, title: 42 }, error: expect.stringMatching(/title/) });
  });

  it('reads NDJSON; a broken line after the first is a per-record error', async () => {
    const r = await ingest(appUrl, 'data/mixed_lines.ndjson');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ records: 5, tasks: 3, errors: 2 });
    const errors = await query<{ error_key: string; message: { record: unknown } }>(appUrl, "select error_key, message from errors where error_key like 'mixed_lines:%' order by error_key");
    expect(errors.map((e) => e.error_key)).toEqual(['mixed_lines:2', 'mixed_lines:a4']);
    expect(errors[0]?.message.record).toBe('{this line is broken');
  });

  it.each([
    ['data/not_json.json', /not JSON: line 1/],
    ['data/truncated.json', /unterminated JSON array/],
  ])('rejects %s with a clear message and enqueues nothing', async (file, message) => {
    const name = path.basename(file, '.json');
    const r = await ingest(appUrl, file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/nothing was enqueued/);
    expect(await workflowCount(`ingest:${name}:`)).toBe(0);
  });

  it('rides out a lock held on tasks: the insert attempt times out, the step retries, every row lands', async () => {
    const file = path.join(dir, 'locked.json');
    await writeDataset(file, 300, 5, 'json');
    const release = await lockTasks();
    try {
      const running = ingest(appUrl, file);
      const retried = await service.waitForLog((l) => /automatically retried/.test(String(l.msg)) && /lock timeout/.test(String(l.msg)), 30_000);
      expect(retried.msg).toMatch(/Attempt 1 of 5/);
      await release();
      const r = await running;
      expect(r.code, r.stderr).toBe(0);
      // Record 50 is in PIPELINE_FAIL_IDS for this service.
      expect(r.summary).toMatchObject({ records: 300, tasks: 299, errors: 1, inserted_tasks: 299, inserted_errors: 1, failed_chunks: 0 });
    } finally {
      await release();
    }
    expect(await rowCounts(appUrl, 'locked:')).toEqual({ tasks: 299, errors: 1, both: 0 });
  });

  it('keeps a record holding a NUL character (JSONB cannot store it) from sinking its chunk', async () => {
    const file = path.join(dir, 'nul.json');
    const records = [{ id: 1, title: 'fine' }, { id: 2, title: 'bad\u0000title' }, { id: 3, note: 'fine too' }];
    await fs.writeFile(file, JSON.stringify(records));
    const r = await ingest(appUrl, file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ records: 3, tasks: 2, errors: 1, failed_chunks: 0 });
    const [row] = await query<{ message: { kind: string; error: string; record: { title: string } } }>(
      appUrl,
      "select message from errors where error_key = 'nul:2'",
    );
    expect(row?.message.kind).toBe('invalid_record');
    expect(row?.message.error).toMatch(/NUL/);
    expect(row?.message.record.title).toBe('bad\\u0000title');
    expect(await rowCounts(appUrl, 'nul:')).toEqual({ tasks: 2, errors: 1, both: 0 });
  });

  it('re-ingesting re-runs a chunk whose inserts ran out of retries, so its records still land exactly once', async () => {
    const file = path.join(dir, 'outage.json');
    await writeDataset(file, 120, 9, 'json');
    const release = await lockTasks();
    try {
      // Every insert attempt times out on the lock until the step's retries are spent: the chunk fails.
      const failed = await ingest(appUrl, file);
      expect(failed.code).toBe(1);
      expect(failed.summary).toMatchObject({ records: 120, failed_chunks: 1 });
    } finally {
      await release();
    }
    expect(await rowCounts(appUrl, 'outage:')).toEqual({ tasks: 0, errors: 0, both: 0 });
    const again = await ingest(appUrl, file);
    expect(again.code, `${again.stderr}\n${again.stdout}`).toBe(0);
    expect(again.stderr).toMatch(/re-running 1 chunk/);
    expect(again.summary).toMatchObject({ records: 120, failed_chunks: 0 });
    expect(await rowCounts(appUrl, 'outage:')).toEqual({ tasks: 119, errors: 1, both: 0 });
  });
});
