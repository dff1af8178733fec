// A chunk's tasks rows are written with COPY (src/pipeline/records.ts): keys, titles and JSON texts with COPY's
// special characters must land exactly as they would through a JSON parameter, and a key already taken must fail
// the COPY inside its savepoint and take the ON CONFLICT path (identical data present, different data key_conflict)
// without leaving a row twice.
import type { Knex } from 'knex';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeChunkIn, type PreparedTask } from '../src/pipeline/records.js';
import { createKnex, migrateLatest } from '../src/runtime/migrations.js';
import { createTestDatabase, query } from './support/database.js';

let appUrl: string;
let knex: Knex;

beforeAll(async () => {
  appUrl = await createTestDatabase('tasks_copy');
  knex = createKnex(appUrl, 2);
  await migrateLatest(knex);
});

afterAll(async () => {
  await knex?.destroy();
});

function write(ingestion: string, tasks: readonly PreparedTask[]) {
  return knex.transaction((trx) =>
    writeChunkIn(trx, {
      ingestion,
      chunk: 0,
      records: tasks.length,
      tasks: { rows: tasks },
      errors: [],
      originalRecord: (position) => ({ position }),
      errorKeyOf: (position) => `${ingestion}@sha#${position}`,
    }),
  );
}

const tricky: PreparedTask[] = [
  // The text transform's rows: JSON text as staged, raw newline/tab/CR whitespace between tokens.
  { task_key: 'c:1', title: 'T1', dataJson: '{"id" : 1 ,\n\t"title":"T1",\r\n "s" : "A B"}', position: 1 },
  // Parsed rows: strings holding backslashes, tabs, newlines, quotes, COPY's null mark and non-ASCII.
  {
    task_key: 'c:2',
    title: 'tab\there\nnew\\line \\N',
    data: { id: 2, s: 'back\\slash \\N \t tab \n nl \r cr "q"', u: 'ÄÖ 😀', n: [1.5, null, true] },
    position: 2,
  },
  { task_key: 'c:\\N', title: '\\N', data: { id: '\\N' }, position: 3 },
  { task_key: 'c:4', title: null, data: { id: 4, title: null }, position: 4 },
];

function expectedData(t: PreparedTask): unknown {
  return 'dataJson' in t ? JSON.parse(t.dataJson) : t.data;
}

it('stores keys, titles and data exactly, COPY special characters included', async () => {
  const outcome = await write('copy-exact', tricky);
  expect(outcome).toEqual({ tasks: 4, errors: {}, insertedTasks: 4, insertedErrors: 0 });
  const rows = await query<{ task_key: string; title: string | null; data: unknown }>(
    appUrl,
    "select task_key, title, data from tasks where task_key like 'c:%' order by task_key",
  );
  const expected = tricky
    .map((t) => ({ task_key: t.task_key, title: t.title, data: expectedData(t) }))
    .sort((a, b) => (a.task_key < b.task_key ? -1 : 1));
  expect(rows).toEqual(expected);
});

it('a key already taken: the COPY rolls back to its savepoint, identical rows count as present, others conflict', async () => {
  const first: PreparedTask[] = [
    { task_key: 'k:1', title: 'one', data: { id: 1 }, position: 1 },
    { task_key: 'k:2', title: 'two', data: { id: 2 }, position: 2 },
  ];
  await write('conflict-1', first);
  const second: PreparedTask[] = [
    { task_key: 'k:0', title: 'zero', data: { id: 0 }, position: 1 },
    { task_key: 'k:1', title: 'one', dataJson: '{"id":1}', position: 2 }, // identical: present
    { task_key: 'k:2', title: 'two', data: { id: 2, changed: true }, position: 3 }, // different: key_conflict
    { task_key: 'k:3', title: 'three', data: { id: 3 }, position: 4 },
  ];
  const outcome = await write('conflict-2', second);
  expect(outcome).toEqual({ tasks: 3, errors: { key_conflict: 1 }, insertedTasks: 2, insertedErrors: 1 });
  const rows = await query<{ task_key: string; n: number }>(
    appUrl,
    "select task_key, count(*)::int as n from tasks where task_key like 'k:%' group by task_key order by task_key",
  );
  expect(rows).toEqual([
    { task_key: 'k:0', n: 1 },
    { task_key: 'k:1', n: 1 },
    { task_key: 'k:2', n: 1 },
    { task_key: 'k:3', n: 1 },
  ]);
  const conflicts = await query<{ error_key: string; kind: string }>(
    appUrl,
    "select error_key, message->>'kind' as kind from errors where error_key like 'conflict-2@%'",
  );
  expect(conflicts).toEqual([{ error_key: 'conflict-2@sha#3', kind: 'key_conflict' }]);
});

it('a failed chunk transaction leaves none of its copied rows', async () => {
  await expect(
    knex.transaction(async (trx) => {
      await writeChunkIn(trx, {
        ingestion: 'rolled-back',
        chunk: 0,
        records: 1,
        tasks: { rows: [{ task_key: 'r:1', title: null, data: { id: 1 }, position: 1 }] },
        errors: [],
        originalRecord: () => null,
        errorKeyOf: (position) => `rolled-back@sha#${position}`,
      });
      throw new Error('crash after the write');
    }),
  ).rejects.toThrow('crash after the write');
  expect(await query(appUrl, "select task_key from tasks where task_key = 'r:1'")).toEqual([]);
});
