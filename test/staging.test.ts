// Staging (src/pipeline/staging.ts) against a real Postgres: duplicates decided set-wise in SQL (first position per
// id, 5 and "5" alike), texts stored exactly (COPY escaping, U+0000 as the text \u0000 with its parse error), a
// second staging of the same ingestion loads nothing, and an empty dataset leaves no table behind.
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hashFile, stageDataset } from '../src/pipeline/staging.js';
import { createKnex, migrateLatest } from '../src/runtime/migrations.js';
import { createTestDatabase, query } from './support/database.js';
import { tempDir } from './pipelineSupport.js';

let appUrl: string;
let dir: string;
let db: pg.Client;

beforeAll(async () => {
  appUrl = await createTestDatabase('staging');
  const knex = createKnex(appUrl, 1);
  await migrateLatest(knex);
  await knex.destroy();
  dir = await tempDir('staging');
  db = new pg.Client({ connectionString: appUrl });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await fs.rm(dir, { recursive: true, force: true });
});

async function stage(name: string, content: string) {
  const file = path.join(dir, name);
  await fs.writeFile(file, content);
  const sha256 = await hashFile(file);
  return stageDataset(db, { file, name, sha256, chunkSize: 2, ingestionKey: `${name}:${sha256.slice(0, 20)}:c2` });
}

it('marks every later occurrence of an id with its first position; texts come back exactly', async () => {
  const lines = [
    '{"id":1,"t":"a\\tb"}',
    '{"id":"1","t":"back\\\\slash"}',
    '{"id":2}',
    '{"x":"no id"}',
    '{"id":1}',
    '{broken',
    '{"id":2,"t":"x"}',
  ];
  const staged = await stage('dups', `${lines.join('\n')}\n`);
  expect(staged).toMatchObject({
    records: 7,
    chunks: 4,
    format: 'ndjson',
    stagedNow: true,
    staging: `xyra_staging.ingestion_${staged.ingestionId}`,
  });
  const rows = await query<{ position: number; text: string; first_position: number | null; invalid: string | null }>(
    appUrl,
    `select position, text, first_position, invalid from ${staged.staging} order by position`,
  );
  expect(rows.map((r) => [r.position, r.first_position])).toEqual([
    [1, null],
    [2, 1],
    [3, null],
    [4, null],
    [5, 1],
    [6, null],
    [7, 3],
  ]);
  expect(rows.map((r) => r.text)).toEqual(lines);
  expect(rows[5]?.invalid).toMatch(/JSON/);
  expect(rows.filter((r) => r.invalid !== null)).toHaveLength(1);
  expect((await stage('dups', `${lines.join('\n')}\n`)).stagedNow).toBe(false);
});

it('stages a raw U+0000 (which a text column cannot hold) as the text \\u0000, keeping the parse error', async () => {
  const staged = await stage('nul', '[{"id":1},\n"a\u0000b"]');
  const rows = await query<{ text: string; invalid: string | null }>(
    appUrl,
    `select text, invalid from ${staged.staging} order by position`,
  );
  expect(rows[1]?.text).toBe('"a\\u0000b"');
  expect(rows[1]?.invalid).toMatch(/JSON|control character/i);
});

it('an empty dataset is staged without a table', async () => {
  const staged = await stage('empty', '[]');
  expect(staged).toMatchObject({ records: 0, chunks: 0, staging: null });
  const [t] = await query<{ present: boolean }>(
    appUrl,
    `select to_regclass('xyra_staging.ingestion_${staged.ingestionId}') is not null as present`,
  );
  expect(t?.present).toBe(false);
});

it('refuses a device (/dev/zero) before hashing it, instead of reading forever', async () => {
  await expect(hashFile('/dev/zero')).rejects.toThrow(/not a regular file/);
});
