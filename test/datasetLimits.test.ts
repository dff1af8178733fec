// Hostile datasets: a record over the size limit or nested deeper than the depth limit becomes one
// `invalid_record` row with a preview and the rest of the file goes on; the NDJSON splitter is linear in the
// file size (a 50 MB single line is read once, not copied per read); a device such as /dev/zero is refused at
// once instead of read forever.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from '../src/errors.js';
import { parseChunk, prepareChunk } from '../src/pipeline/chunk.js';
import {
  MAX_RECORD_BYTES,
  MAX_RECORD_DEPTH,
  nestingDepth,
  readRecords,
  RECORD_PREVIEW_CHARS,
} from '../src/pipeline/dataset.js';
import { hashFile } from '../src/pipeline/staging.js';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'xyra-limits-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Reads the file like `xyra ingest` stages it, then prepares all its records as one chunk, as the chunk workflow does. */
async function prepareFile(file: string) {
  const positions: number[] = [];
  const elements: string[] = [];
  for await (const { element } of readRecords(file)) {
    positions.push(element.position);
    elements.push(element.text);
  }
  const scan = { records: elements.length, sha256: await hashFile(file) };
  const chunk = parseChunk({
    dataset: 'ds',
    ingestion: 'ds:x:c0',
    fileSha: scan.sha256,
    chunk: 0,
    positions,
    elements,
    duplicates: [],
  });
  return { scan, elements, out: prepareChunk(chunk, new Set()) };
}

const deep = (levels: number) => `{"id":2,"v":${'['.repeat(levels)}${']'.repeat(levels)}}`;

describe('a record nested too deep', () => {
  it('10,000 levels: one invalid_record row with a preview; the records around it become tasks', async () => {
    const file = path.join(dir, 'deep.ndjson');
    await fs.writeFile(file, `{"id":1,"title":"a"}\n${deep(10_000)}\n{"id":3,"title":"c"}\n`);
    const { scan, out } = await prepareFile(file);
    expect(scan.records).toBe(3);
    expect(out.tasks.map((t) => t.task_key)).toEqual(['ds:1', 'ds:3']);
    expect(out.errors).toHaveLength(1);
    expect(out.errors[0]!.message).toMatchObject({
      kind: 'invalid_record',
      position: 2,
      error: `invalid record: record nested deeper than ${MAX_RECORD_DEPTH} levels`,
    });
    expect(String(out.errors[0]!.message.record)).toHaveLength(RECORD_PREVIEW_CHARS);
  });

  it('as the first element of a JSON array: a record problem, not a file problem', async () => {
    const file = path.join(dir, 'deep.json');
    await fs.writeFile(file, `[${deep(5_000)}, {"id":9}]`);
    const { out } = await prepareFile(file);
    expect(out.tasks.map((t) => t.task_key)).toEqual(['ds:9']);
    expect(out.errors.map((e) => e.message.kind)).toEqual(['invalid_record']);
  });

  it('the limit itself is accepted; brackets inside strings do not count', () => {
    expect(nestingDepth(deep(MAX_RECORD_DEPTH - 1))).toBe(MAX_RECORD_DEPTH);
    expect(nestingDepth(`{"s":"${'['.repeat(500)}\\""}`)).toBe(1);
    expect(nestingDepth(deep(10_000))).toBe(MAX_RECORD_DEPTH + 1);
  });
});

describe('a record over the size limit', () => {
  it('a 50 MB single line: one invalid_record row with a preview, read in bounded memory', async () => {
    const file = path.join(dir, 'long.ndjson');
    const handle = await fs.open(file, 'w');
    await handle.write('{"id":1,"title":"before"}\n{"id":2,"blob":"');
    const block = 'x'.repeat(1024 * 1024);
    for (let i = 0; i < 50; i++) await handle.write(block);
    await handle.write('"}\n{"id":3,"title":"after"}\n');
    await handle.close();
    const { scan, elements, out } = await prepareFile(file);
    expect(scan.records).toBe(3);
    // Nothing carries the 50 MB: every element text stays within the limit.
    expect(Math.max(...elements.map((t) => t.length))).toBeLessThan(MAX_RECORD_BYTES);
    expect(out.tasks.map((t) => t.task_key)).toEqual(['ds:1', 'ds:3']);
    expect(out.errors).toHaveLength(1);
    const message = out.errors[0]!.message;
    expect(message).toMatchObject({ kind: 'invalid_record', position: 2, task_key: 'ds#2' });
    expect(message.error).toMatch(/^invalid record: record too large: 524288\d\d bytes \(limit 1048576\)/);
    expect(String(message.record).startsWith('{"id":2,"blob":"xxx')).toBe(true);
    expect(String(message.record)).toHaveLength(RECORD_PREVIEW_CHARS);
  }, 120_000);

  it('the same in a JSON array, and a record at exactly the limit is kept', async () => {
    const file = path.join(dir, 'big.json');
    const exact = `{"id":1,"s":"${'y'.repeat(MAX_RECORD_BYTES - 15)}"}`;
    expect(Buffer.byteLength(exact)).toBe(MAX_RECORD_BYTES);
    await fs.writeFile(file, `[${exact},\n{"id":2,"s":"${'z'.repeat(MAX_RECORD_BYTES)}"}, {"id":3}]`);
    const { out } = await prepareFile(file);
    expect(out.tasks.map((t) => t.task_key)).toEqual(['ds:1', 'ds:3']);
    expect(out.errors.map((e) => [e.message.position, e.message.kind])).toEqual([[2, 'invalid_record']]);
  });
});

describe('files that are no files', () => {
  it('/dev/zero is refused at once with a DatasetError', async () => {
    const readAll = async (file: string) => {
      for await (const _record of readRecords(file)) void _record;
    };
    await expect(readAll('/dev/zero')).rejects.toThrow(DatasetError);
    await expect(readAll('/dev/zero')).rejects.toThrow(/not a regular file/);
  });

  it('a file of NUL bytes without a newline is one oversized invalid line, not a hang', async () => {
    const file = path.join(dir, 'zeros.ndjson');
    await fs.writeFile(file, Buffer.alloc(3 * 1024 * 1024));
    // The first element decides whether the file is JSON: a NUL line under the limit would be "not JSON";
    // over the limit it is one oversized record.
    const { out } = await prepareFile(file);
    expect(out.tasks).toEqual([]);
    expect(out.errors.map((e) => e.message.error)).toEqual([
      expect.stringMatching(/^invalid record: record too large: 3145728 bytes/),
    ]);
  });
});
