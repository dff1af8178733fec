import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from '../src/errors.js';
import { parseChunk, prepareChunk } from '../src/pipeline/chunk.js';
import { recordId, taskKey } from '../src/pipeline/identity.js';
import { datasetName, readElements, readRecords, type DatasetFormat } from '../src/pipeline/dataset.js';
import { generateRecord, seededRandom, writeDataset } from '../src/pipeline/generator.js';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-dataset-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function file(name: string, content: string): Promise<string> {
  const p = path.join(dir, name);
  await fs.writeFile(p, content);
  return p;
}

/** Every record of the file as staging reads it (readRecords): how many, and the format told from the content. */
async function readAll(p: string): Promise<{ records: number; format: DatasetFormat | undefined }> {
  let format: DatasetFormat | undefined;
  let records = 0;
  for await (const _record of readRecords(p, { onFormat: (f) => (format = f) })) records++;
  return { records, format };
}

async function texts(p: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of readElements(p)) out.push(e.text);
  return out;
}

describe('readElements: JSON arrays', () => {
  it('splits elements with brackets, commas and escaped quotes inside strings', async () => {
    const records = [
      { id: 1, title: 'a, b ] } [ {', nested: { list: [1, [2, 3]], q: 'say "hi" \\' } },
      'plain string',
      42,
      null,
      [1, 2],
    ];
    const p = await file('tricky.json', `  \n${JSON.stringify(records, null, 2)}\n`);
    const got = (await texts(p)).map((t) => JSON.parse(t) as unknown);
    expect(got).toEqual(records);
  });

  it('streams a file larger than one read buffer, element texts intact across buffer boundaries', async () => {
    const p = path.join(dir, 'big.json');
    await writeDataset(p, 6000, 3, 'json'); // about 1.2 MB: several 256 KB reads
    const rand = seededRandom(3);
    let i = 0;
    for await (const e of readElements(p)) {
      i++;
      expect(JSON.parse(e.text)).toEqual(generateRecord(i, rand));
    }
    expect(i).toBe(6000);
    expect(await readAll(p)).toEqual({ records: 6000, format: 'json-array' });
  });

  it('reads an empty array as an empty dataset', async () => {
    expect(await texts(await file('empty-array.json', '[ ]'))).toEqual([]);
  });

  it.each([
    ['unterminated.json', '[{"id":1},{"id":2}', /unterminated/],
    ['junk-after.json', '[{"id":1}] trailing', /after the closing/],
    ['trailing-comma.json', '[{"id":1},]', /empty element/],
    ['empty.json', '', /empty file/],
    ['whitespace.json', '  \n\n ', /empty file/],
    ['first-broken.json', '[{id: 1}, {"id": 2}]', /not JSON/],
    ['text.json', 'hello world\nthis is not json\n', /not JSON: line 1/],
    ['pretty-object.json', '{\n  "id": 1\n}\n', /not JSON: line 1/],
  ])('rejects %s as a whole file', async (name, content, message) => {
    await expect(readAll(await file(name, content))).rejects.toSatisfy(
      (e: unknown) => e instanceof DatasetError && message.test(e.message),
    );
  });

  it('reports a missing file as a DatasetError', async () => {
    await expect(readAll(path.join(dir, 'missing.json'))).rejects.toBeInstanceOf(DatasetError);
  });
});

describe('readElements: NDJSON', () => {
  it('reads one record a line, skipping blank lines, with CRLF', async () => {
    const p = await file('lines.ndjson', '{"id":1}\r\n\r\n{"id":2,"title":"x"}\n  \n{"id":3}');
    const elements = [];
    for await (const e of readElements(p)) elements.push(e);
    expect(elements.map((e) => JSON.parse(e.text) as unknown)).toEqual([{ id: 1 }, { id: 2, title: 'x' }, { id: 3 }]);
    expect(elements.map((e) => [e.index, e.position])).toEqual([
      [0, 1],
      [1, 3],
      [2, 5],
    ]);
    expect(await readAll(p)).toEqual({ records: 3, format: 'ndjson' });
  });

  it('accepts a broken line after the first one (it becomes a per-record error later)', async () => {
    const p = await file('mid-broken.jsonl', '{"id":1}\n{broken\n{"id":3}\n');
    expect(await readAll(p)).toEqual({ records: 3, format: 'ndjson' });
  });
});

describe('datasetName and taskKey', () => {
  it('names a dataset after the file base name without its last extension', () => {
    expect(datasetName('/x/data/tasks_100.json')).toBe('tasks_100');
    expect(datasetName('orders.2026-11.ndjson')).toBe('orders.2026-11');
    expect(datasetName('tasks.v2.json')).not.toBe(datasetName('tasks.json'));
    expect(datasetName('noext')).toBe('noext');
  });

  it('keys a record by id (5 and "5" alike), by 1-based position when it has no usable id; the forms never collide', () => {
    expect(taskKey('ds', 4, recordId({ id: 9 }))).toBe('ds:9');
    expect(taskKey('ds', 4, recordId({ id: '9' }))).toBe('ds:9');
    expect(taskKey('ds', 4, recordId({ id: 'x-1' }))).toBe('ds:x-1');
    expect(taskKey('ds', 4, recordId({ title: 'no id' }))).toBe('ds#4');
    expect(taskKey('ds', 4, recordId('not an object'))).toBe('ds#4');
    expect(taskKey('ds', 4, recordId({ id: { nested: true } }))).toBe('ds#4');
    expect(taskKey('ds', 4, recordId({ id: 'a\u0000b' }))).toBe('ds#4');
    expect(taskKey('ds', 4, recordId({ id: 4 }))).not.toBe(taskKey('ds', 4, undefined));
  });
});

describe('prepareChunk', () => {
  it('keys, validates and transforms records; duplicates, invalid records and failures get their kinds', () => {
    const elements = [
      '{"id":1,"title":"ok","tags":["a"]}',
      '"just a string"',
      '{"id":3,"title":42}',
      '{broken',
      '{"id":5,"title":"fails"}',
      '{"title":"no id"}',
      '{"id":{"nested":true}}',
      '{"id":"1","title":"again"}',
      '{"id":8,"title":null}',
    ];
    const positions = [11, 12, 13, 14, 15, 16, 17, 18, 19];
    const chunk = parseChunk({
      dataset: 'ds',
      ingestion: 'ds:abc:c9',
      fileSha: 'abc',
      chunk: 1,
      positions,
      elements,
      duplicates: [[18, 11]],
    });
    const out = prepareChunk(chunk, new Set(['5']));
    expect(out.tasks).toEqual([
      { task_key: 'ds:1', title: 'ok', data: { id: 1, title: 'OK', tags: ['A'] }, position: 11 },
      { task_key: 'ds#16', title: 'no id', data: { title: 'NO ID' }, position: 16 },
      { task_key: 'ds:8', title: null, data: { id: 8, title: null }, position: 19 },
    ]);
    expect(
      out.errors.map((e) => [e.error_key, e.message.task_key, e.message.position, e.message.kind, e.message.attempts]),
    ).toEqual([
      ['ds@abc#12', 'ds#12', 12, 'invalid_record', 1],
      ['ds@abc#13', 'ds:3', 13, 'invalid_record', 1],
      ['ds@abc#14', 'ds#14', 14, 'invalid_record', 1],
      ['ds@abc#17', 'ds#17', 17, 'invalid_record', 1],
      ['ds@abc#18', 'ds:1', 18, 'duplicate_id', 1],
    ]);
    expect(out.errors[1]?.message).toMatchObject({
      record: { id: 3, title: 42 },
      error: expect.stringMatching(/title/),
    });
    expect(out.errors[2]?.message).toMatchObject({ record: '{broken', error: expect.stringMatching(/not valid JSON/) });
    expect(out.errors[4]?.message).toMatchObject({
      record: { id: '1', title: 'again' },
      first_position: 11,
      error: expect.stringMatching(/position 11/),
    });
    expect(out.failed).toEqual([
      {
        place: { dataset: 'ds', fileSha: 'abc', position: 15, key: 'ds:5' },
        record: { id: 5, title: 'fails' },
        error: expect.stringMatching(/simulated/),
      },
    ]);
  });

  it('stores a record holding a registered secret exactly as given (redaction never rewrites data)', async () => {
    const { registerSecret } = await import('../src/logger.js');
    registerSecret('xyra');
    registerSecret('a-long-secret-token');
    const chunk = parseChunk({
      dataset: 'ds',
      ingestion: 'k',
      fileSha: 'abc',
      chunk: 0,
      positions: [1, 2],
      duplicates: [],
      elements: [
        '{"id":1,"title":"xyra a-long-secret-token"}',
        '{"id":2,"title":42,"note":"xyra a-long-secret-token"}',
      ],
    });
    const out = prepareChunk(chunk, new Set());
    expect(out.tasks[0]?.title).toBe('xyra a-long-secret-token');
    expect(out.errors[0]?.message.record).toEqual({ id: 2, title: 42, note: 'xyra a-long-secret-token' });
  });
});
