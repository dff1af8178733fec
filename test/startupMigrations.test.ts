// migrateLatest's fast path (src/runtime/migrations.ts): when every migration on disk is applied it answers from
// one read of knex_migrations and leaves knex's migrator alone; anything else still goes through knex. Real
// Postgres, real knex, migrations written to a temporary directory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { createKnex, migrateLatest } from '../src/runtime/migrations.js';
import { createTestDatabase, query } from './support/database.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xyra-migrations-'));
let appUrl: string;
let knex: Knex;

/** A migration that creates table `name` (plain ES module: the directory says "type": "module"). */
const writeMigration = (file: string, table: string) =>
  fs.writeFileSync(
    path.join(dir, file),
    `export async function up(knex) { await knex.schema.createTable('${table}', (t) => t.integer('id')); }\n` +
      `export async function down(knex) { await knex.schema.dropTable('${table}'); }\n`,
  );

beforeAll(async () => {
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  appUrl = await createTestDatabase('startup_migrations');
  knex = createKnex(appUrl, 1);
});
afterAll(async () => {
  await knex?.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
});

const tables = async () =>
  (
    await query<{ tablename: string }>(
      appUrl,
      "select tablename from pg_tables where schemaname = 'public' and tablename like 'm\\_%' order by 1",
    )
  ).map((r) => r.tablename);

/** knex refuses to migrate while its lock row says locked: only a call that skipped knex succeeds then. */
const setKnexLock = (locked: boolean) =>
  query(appUrl, 'update knex_migrations_lock set is_locked = $1', [locked ? 1 : 0]);

it('applies a fresh database, skips knex when nothing is pending, and applies a new file at the next call', async () => {
  writeMigration('20260101000000_first.js', 'm_first');
  expect(await migrateLatest(knex, dir)).toEqual(['20260101000000_first']);
  expect(await tables()).toEqual(['m_first']);

  // Nothing pending: answered without knex's migrator (which would fail on the held lock).
  await setKnexLock(true);
  expect(await migrateLatest(knex, dir)).toEqual([]);

  // A new migration file: knex runs (and, with the lock held, refuses, as it always did).
  writeMigration('20260102000000_second.js', 'm_second');
  await expect(migrateLatest(knex, dir)).rejects.toThrow(/locked/i);
  await setKnexLock(false);
  expect(await migrateLatest(knex, dir)).toEqual(['20260102000000_second']);
  expect(await tables()).toEqual(['m_first', 'm_second']);
  expect(await migrateLatest(knex, dir)).toEqual([]);
});

it('leaves an applied migration missing from the directory to knex, which refuses it as before', async () => {
  fs.renameSync(path.join(dir, '20260102000000_second.js'), path.join(dir, 'second.js.off'));
  try {
    await expect(migrateLatest(knex, dir)).rejects.toThrow(/corrupt/i);
  } finally {
    fs.renameSync(path.join(dir, 'second.js.off'), path.join(dir, '20260102000000_second.js'));
  }
  expect(await migrateLatest(knex, dir)).toEqual([]);
});
