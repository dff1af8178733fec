import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from '../src/errors.js';
import { parseChunk, prepareChunk, taskKey } from '../src/pipeline/chunk.js';
import { datasetName, readElements, scanDataset } from '../src/pipeline/dataset.js';
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
    const scan = await scanDataset(p);
    expect(scan).toMatchObject({ records: 6000, format: 'json-array', name: 'big' });
    expect(scan.sha256).toMatch(/^[0-9a-f]{64}$/);
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
    await expect(scanDataset(await file(name, content))).rejects.toSatisfy(
      (e: unknown) => e instanceof DatasetError && message.test(e.message),
    );
  });

  it('reports a missing file as a DatasetError', async () => {
    await expect(scanDataset(path.join(dir, 'missing.json'))).rejects.toBeInstanceOf(DatasetError);
  });
});

describe('readElements: NDJSON', () => {
  it('reads one record a line, skipping blank lines, with CRLF', async () => {
    const p = await file('lines.ndjson', '{"id":1}\r\n\r\n{"id":2,"title":"x"}\n  \n{"id":3}');
    const elements = [];
    for await (const e of readElements(p)) elements.push(e);
    expect(elements.map((e) => JSON.parse(e.text) as unknown)).toEqual([{ id: 1 }, { id: 2, title: 'x' }, { id: 3 }]);
    expect(elements.map((e) => [e.index, e.position])).toEqual([[0, 1], [1, 3], [2, 5]]);
    expect(await scanDataset(p)).toMatchObject({ records: 3, format: 'ndjson', name: 'lines' });
  });

  it('accepts a broken line after the first one (it becomes a per-record error later)', async () => {
    const p = await file('mid-broken.jsonl', '{"id":1}\n{broken\n{"id":3}\n');
    expect(await scanDataset(p)).toMatchObject({ records: 3 });
  });
});

describe('datasetName and taskKey', () => {
  it('names a dataset after the file base name without extension', () => {
    expect(datasetName('/x/data/tasks_100.json')).toBe('tasks_100');
    expect(datasetName('a.b.ndjson')).toBe('a');
  });

  it('keys a record by id, by index when it has no usable id', () => {
    expect(taskKey('ds', 4, { id: 9 })).toBe('ds:9');
    expect(taskKey('ds', 4, { id: 'x-1' })).toBe('ds:x-1');
    expect(taskKey('ds', 4, { title: 'no id' })).toBe('ds:4');
    expect(taskKey('ds', 4, 'not an object')).toBe('ds:4');
  });
});

describe('prepareChunk', () => {
  it('turns invalid records into invalid_record errors and transforms the rest', () => {
    const elements = [
      '{"id":1,"title":"ok","tags":["a"]}',
      '"just a string"',
      '{"id":3,"title":42}',
      '{broken',
      '{"id":5,"title":"fails"}',
      '{"title":"no id"}',
      '{"id":{"nested":true}}',
    ];
    const out = prepareChunk(parseChunk({ dataset: 'ds', offset: 10, elements }), new Set(['5']));
    expect(out.tasks).toEqual([
      { task_key: 'ds:1', title: 'ok', data: { id: 1, title: 'OK', tags: ['A'] } },
      { task_key: 'ds:15', title: 'no id', data: { title: 'NO ID' } },
    ]);
    expect(out.errors.map((e) => [e.error_key, e.message.kind, e.message.attempts])).toEqual([
      ['ds:11', 'invalid_record', 1],
      ['ds:3', 'invalid_record', 1],
      ['ds:13', 'invalid_record', 1],
      ['ds:16', 'invalid_record', 1],
    ]);
    expect(out.errors[1]?.message).toMatchObject({ record: { id: 3, title: 42 }, error: expect.stringMatching(/title/) });
    expect(out.errors[2]?.message).toMatchObject({ record: '{broken', error: expect.stringMatching(/not valid JSON/) });
    expect(out.failed).toEqual([{ key: 'ds:5', record: { id: 5, title: 'fails' }, error: expect.stringMatching(/simulated/) }]);
  });
});
