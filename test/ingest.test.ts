// `xyra ingest` against a real service process: row counts, the error path, malformed input, idempotent
// re-ingest, and a transient lock on `tasks` that the insert step's retries ride out.
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RECORD_BYTES, MAX_RECORD_DEPTH, RECORD_PREVIEW_CHARS } from '../src/pipeline/dataset.js';
import { writeDataset } from '../src/pipeline/generator.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import type { ServiceProcess } from './support/serviceProcess.js';
import { ingest, kinds, rowCounts, stagedRecords, startPipelineService, tempDir } from './pipelineSupport.js';

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
  appUrl = await createMigratedTestDatabase('ingest');
  dir = await tempDir('ingest');
  service = await startPipelineService(appUrl, { PIPELINE_FAIL_IDS: '50' });
});

afterAll(async () => {
  await service?.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('xyra ingest', () => {
  it('ingests the 100-record dataset: 99 tasks, record 50 in errors with its error, position, attempts and original record', async () => {
    const r = await ingest(appUrl, 'data/tasks_100.json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({
      dataset: 'tasks_100',
      records: 100,
      tasks: 99,
      errors: { total: 1, by_kind: kinds({ transform_failed: 1 }) },
      no_outcome: 0,
      failed_chunks: 0,
    });
    expect(await rowCounts(appUrl, 'tasks_100')).toEqual({ tasks: 99, errors: 1 });
    // Every chunk finished: the staged records are gone (the ingestion's staging table was dropped).
    const [ingestion] = await query<{ staging: string | null; staged_at: Date | null }>(
      appUrl,
      "select staging, staged_at from ingestions where dataset = 'tasks_100'",
    );
    expect(ingestion).toMatchObject({ staging: null, staged_at: expect.any(Date) });
    expect(await stagedRecords(appUrl, 'tasks_100')).toBeNull();

    const original = JSON.parse(await fs.readFile('data/tasks_100.json', 'utf8')) as Array<Record<string, unknown>>;
    const [error] = await query<{ error_key: string; message: Record<string, unknown> }>(
      appUrl,
      'select error_key, message from errors',
    );
    expect(error?.error_key).toBe(`tasks_100@${r.summary?.sha256.slice(0, 20)}#50`);
    expect(error?.message).toEqual({
      kind: 'transform_failed',
      error: 'simulated transform failure for record id 50',
      task_key: 'tasks_100:50',
      position: 50,
      record: original[49],
      attempts: 5, // PIPELINE_STEP_MAX_ATTEMPTS default
    });

    const [task] = await query<{ title: string; data: Record<string, unknown> }>(
      appUrl,
      "select title, data from tasks where task_key = 'tasks_100:7'",
    );
    const seven = original[6] as { title: string; tags: string[]; priority: number };
    expect(task?.title).toBe(seven.title);
    expect(task?.data).toMatchObject({
      id: 7,
      title: seven.title.toUpperCase(),
      tags: seven.tags.map((t) => t.toUpperCase()),
      priority: seven.priority,
    });
  });

  it('re-ingesting the same file creates no duplicates and no new workflows, and accounts for every record again', async () => {
    const before = await workflowCount('ingest:tasks_100:');
    const [maxBefore] = await query<{ max: string }>(appUrl, 'select max(id) as max from tasks');
    const r = await ingest(appUrl, 'data/tasks_100.json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ records: 100, tasks: 99, errors: { total: 1 }, no_outcome: 0 });
    expect(await workflowCount('ingest:tasks_100:')).toBe(before);
    expect(await rowCounts(appUrl, 'tasks_100')).toEqual({ tasks: 99, errors: 1 });
    const [maxAfter] = await query<{ max: string }>(appUrl, 'select max(id) as max from tasks');
    expect(maxAfter?.max).toBe(maxBefore?.max);
  });

  it('with a different chunk size the same file re-runs, finds the same rows, inserts nothing twice', async () => {
    const r = await ingest(appUrl, 'data/tasks_100.json', ['--wait', '--json', '--chunk-size', '7']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({
      chunks: 15,
      records: 100,
      tasks: 99,
      errors: { total: 1, by_kind: kinds({ transform_failed: 1 }) },
      no_outcome: 0,
    });
    expect(await rowCounts(appUrl, 'tasks_100')).toEqual({ tasks: 99, errors: 1 });
  });

  it('a file of the same name with other data: changed records become key_conflict errors, identical ones count as present', async () => {
    const original = JSON.parse(await fs.readFile('data/tasks_100.json', 'utf8')) as Array<Record<string, unknown>>;
    const changed = original.slice(0, 10).map((rec, i) => (i === 2 ? { ...rec, title: 'changed' } : rec));
    const sub = path.join(dir, 'other');
    await fs.mkdir(sub, { recursive: true });
    const file = path.join(sub, 'tasks_100.json');
    await fs.writeFile(file, JSON.stringify(changed));
    const r = await ingest(appUrl, file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({
      records: 10,
      tasks: 9,
      errors: { total: 1, by_kind: kinds({ key_conflict: 1 }) },
      no_outcome: 0,
    });
    const [conflict] = await query<{ message: Record<string, unknown> }>(
      appUrl,
      "select message from errors where message->>'kind' = 'key_conflict'",
    );
    expect(conflict?.message).toMatchObject({
      task_key: 'tasks_100:3',
      position: 3,
      record: changed[2],
      stored: { title: original[2]?.title, data: { id: 3, title: String(original[2]?.title).toUpperCase() } },
    });
    const [stored] = await query<{ title: string }>(appUrl, "select title from tasks where task_key = 'tasks_100:3'");
    expect(stored?.title).toBe(original[2]?.title);
  });

  it('turns malformed records into invalid_record errors (keyed by position without an id); a null title is a task', async () => {
    const r = await ingest(appUrl, 'data/malformed_records.json', ['--wait', '--json', '--chunk-size', '3']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({
      records: 10,
      tasks: 5,
      errors: { total: 5, by_kind: kinds({ invalid_record: 5 }) },
      no_outcome: 0,
    });
    const tasks = await query<{ task_key: string; title: string | null }>(
      appUrl,
      "select task_key, title from tasks where task_key like 'malformed_records%' order by task_key",
    );
    expect(tasks.map((t) => [t.task_key, t.title])).toEqual([
      ['malformed_records#7', 'No id: keyed by its index'],
      ['malformed_records:101', 'A good record'],
      ['malformed_records:104', null],
      ['malformed_records:106', 'Another good one'],
      ['malformed_records:110', 'Last good record'],
    ]);
    const errors = await query<{
      message: { kind: string; task_key: string; position: number; record: unknown; error: string };
    }>(
      appUrl,
      "select message from errors where error_key like 'malformed_records@%' order by (message->>'position')::int",
    );
    expect(errors.map((e) => [e.message.task_key, e.message.position, e.message.kind])).toEqual([
      ['malformed_records#2', 2, 'invalid_record'],
      ['malformed_records:103', 3, 'invalid_record'],
      ['malformed_records#5', 5, 'invalid_record'],
      ['malformed_records#8', 8, 'invalid_record'],
      ['malformed_records#9', 9, 'invalid_record'],
    ]);
    expect(errors[0]?.message.record).toBe('a string is not a record');
    expect(errors[1]?.message).toMatchObject({ record: { id: 103, title: 42 }, error: expect.stringMatching(/title/) });
  });

  it('reads NDJSON; a broken line after the first is a per-record error keyed by its line number', async () => {
    const r = await ingest(appUrl, 'data/mixed_lines.ndjson');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ records: 5, tasks: 3, errors: { total: 2 } });
    const errors = await query<{ message: { task_key: string; record: unknown } }>(
      appUrl,
      "select message from errors where error_key like 'mixed_lines@%' order by (message->>'position')::int",
    );
    expect(errors.map((e) => e.message.task_key)).toEqual(['mixed_lines#3', 'mixed_lines:a4']);
    expect(errors[0]?.message.record).toBe('{this line is broken');
  });

  it('--name overrides the dataset name', async () => {
    const r = await ingest(appUrl, 'data/mixed_lines.ndjson', ['--name', 'renamed.lines', '--wait', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ dataset: 'renamed.lines', records: 5, tasks: 3 });
    expect(await rowCounts(appUrl, 'renamed.lines')).toEqual({ tasks: 3, errors: 2 });
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
      const retried = await service.waitForLog(
        (l) => /automatically retried/.test(String(l.msg)) && /lock timeout/.test(String(l.msg)),
        30_000,
      );
      expect(retried.msg).toMatch(/Attempt 1 of 5/);
      await release();
      const r = await running;
      expect(r.code, r.stderr).toBe(0);
      // Record 50 is in PIPELINE_FAIL_IDS for this service.
      expect(r.summary).toMatchObject({
        records: 300,
        tasks: 299,
        errors: { total: 1 },
        no_outcome: 0,
        failed_chunks: 0,
      });
    } finally {
      await release();
    }
    expect(await rowCounts(appUrl, 'locked')).toEqual({ tasks: 299, errors: 1 });
  });

  it('keeps a record holding a NUL character (JSONB cannot store it) from sinking its chunk', async () => {
    const file = path.join(dir, 'nul.json');
    const records = [
      { id: 1, title: 'fine' },
      { id: 2, title: 'bad\u0000title' },
      { id: 3, note: 'fine too' },
    ];
    await fs.writeFile(file, JSON.stringify(records));
    const r = await ingest(appUrl, file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({
      records: 3,
      tasks: 2,
      errors: { total: 1, by_kind: kinds({ invalid_record: 1 }) },
      failed_chunks: 0,
    });
    const [row] = await query<{ message: { kind: string; error: string; record: { title: string } } }>(
      appUrl,
      "select message from errors where message->>'task_key' = 'nul:2'",
    );
    expect(row?.message.kind).toBe('invalid_record');
    expect(row?.message.error).toMatch(/NUL/);
    expect(row?.message.record.title).toBe('bad\\u0000title');
    expect(await rowCounts(appUrl, 'nul')).toEqual({ tasks: 2, errors: 1 });
  });

  it('through staging, a record over the size or depth limit is one invalid_record row with a preview; the rest are tasks', async () => {
    const file = path.join(dir, 'limits.ndjson');
    const deep = `{"id":3,"v":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
    const big = `{"id":2,"blob":"${'x'.repeat(MAX_RECORD_BYTES)}"}`;
    await fs.writeFile(file, [`{"id":1,"title":"a"}`, big, deep, `{"id":4,"title":"d"}`].join('\n') + '\n');
    const r = await ingest(appUrl, file, ['--wait', '--json', '--chunk-size', '2', '--timeout', '90']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({
      records: 4,
      tasks: 2,
      errors: { total: 2, by_kind: kinds({ invalid_record: 2 }) },
      no_outcome: 0,
      failed_chunks: 0,
    });
    const rows = await query<{ message: { kind: string; position: number; error: string; record: string } }>(
      appUrl,
      "select message from errors where error_key like 'limits@%' order by (message->>'position')::int",
    );
    expect(rows.map((x) => [x.message.position, x.message.kind])).toEqual([
      [2, 'invalid_record'],
      [3, 'invalid_record'],
    ]);
    expect(rows[0]!.message.error).toMatch(/^invalid record: record too large: \d+ bytes \(limit 1048576\)/);
    expect(rows[0]!.message.record.startsWith('{"id":2,"blob":"xxx')).toBe(true);
    expect(rows[0]!.message.record).toHaveLength(RECORD_PREVIEW_CHARS);
    expect(rows[1]!.message.error).toBe(`invalid record: record nested deeper than ${MAX_RECORD_DEPTH} levels`);
    expect(rows[1]!.message.record).toHaveLength(RECORD_PREVIEW_CHARS);
    expect(await rowCounts(appUrl, 'limits')).toEqual({ tasks: 2, errors: 2 });
  }, 150_000);

  it('a chunk whose inserts ran out of retries: --wait exits non-zero naming it; re-ingest forks it, the failure stays in DBOS', async () => {
    const file = path.join(dir, 'outage.json');
    await writeDataset(file, 120, 9, 'json');
    const release = await lockTasks();
    let failedId: string | undefined;
    try {
      // Every insert attempt times out on the lock until the step's retries are spent: the chunk fails.
      const failed = await ingest(appUrl, file);
      expect(failed.code).toBe(1);
      expect(failed.summary).toMatchObject({
        records: 120,
        tasks: 0,
        errors: { total: 0 },
        no_outcome: 120,
        failed_chunks: 1,
      });
      expect(failed.stderr).toMatch(/120 of 120 records have no outcome/);
      failedId = failed.summary?.failed_chunk_ids[0];
      expect(failed.stderr).toContain(`${failedId} (failed)`);
    } finally {
      await release();
    }
    expect(await rowCounts(appUrl, 'outage')).toEqual({ tasks: 0, errors: 0 });
    expect(await stagedRecords(appUrl, 'outage')).toBe(120); // kept for the re-run
    const again = await ingest(appUrl, file);
    expect(again.code, `${again.stderr}\n${again.stdout}`).toBe(0);
    expect(again.stderr).toMatch(/re-running 1 chunk\(s\) that had failed/);
    expect(again.summary).toMatchObject({
      records: 120,
      tasks: 119,
      errors: { total: 1 },
      no_outcome: 0,
      failed_chunks: 0,
    });
    expect(await rowCounts(appUrl, 'outage')).toEqual({ tasks: 119, errors: 1 });
    expect(await stagedRecords(appUrl, 'outage')).toBeNull(); // the re-run finished the ingestion: dropped
    const rows = await query<{
      workflow_uuid: string;
      status: string;
      error: string | null;
      forked_from: string | null;
    }>(
      systemDatabaseUrlOf(appUrl),
      // DBOS 5.3 keeps a workflow's error in workflow_output (older rows: workflow_status.error).
      `select s.workflow_uuid, s.status, coalesce(o.error, s.error)::text as error, s.forked_from
         from dbos.workflow_status s left join dbos.workflow_output o on o.workflow_uuid = s.workflow_uuid
        where s.workflow_uuid like $1 order by s.workflow_uuid`,
      ['ingest:outage:%'],
    );
    expect(rows.map((w) => [w.workflow_uuid, w.status, w.forked_from])).toEqual([
      [failedId, 'ERROR', null],
      [`${failedId}.retry1`, 'SUCCESS', failedId],
    ]);
    expect(rows[0]?.error).toMatch(/lock timeout/);
  });
});
