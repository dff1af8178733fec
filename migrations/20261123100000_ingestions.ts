// Ingestions and their chunks' outcomes. `xyra ingest` records one `ingestions` row per (dataset, file content,
// chunk size) before it enqueues anything; each chunk workflow writes its `ingestion_chunks` row in the same
// transaction as its `tasks`/`errors` rows, so the accounting (`records = tasks + errors`) and the datasets
// report read counts that can never disagree with the tables.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('ingestions', (t) => {
    t.bigIncrements('id').primary();
    t.text('ingestion_key').notNullable().unique(); // the chunk workflows' ID prefix, see src/pipeline/ingest.ts
    t.text('dataset').notNullable();
    t.text('file_name').notNullable();
    t.text('sha256').notNullable();
    t.text('format').notNullable();
    t.integer('chunk_size').notNullable();
    t.integer('records').notNullable();
    t.integer('chunks').notNullable();
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_ingested_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.raw('create index ingestions_started_at_idx on ingestions (started_at desc, id desc)');
  await knex.schema.createTable('ingestion_chunks', (t) => {
    t.text('ingestion_key').notNullable();
    t.integer('chunk').notNullable();
    t.integer('records').notNullable();
    t.integer('tasks').notNullable(); // records whose tasks row holds exactly their data
    t.jsonb('errors').notNullable(); // {kind: count} of this chunk's errors rows
    t.timestamp('finished_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['ingestion_key', 'chunk']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('ingestion_chunks');
  await knex.schema.dropTableIfExists('ingestions');
}
