// The pipeline's tables: every dataset record ends as exactly one row in one of them.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('tasks', (t) => {
    t.bigIncrements('id').primary();
    t.text('task_key').notNullable().unique(); // `<dataset name>:<record id>`: makes re-inserts no-ops
    t.text('title').nullable();
    t.jsonb('data').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.createTable('errors', (t) => {
    t.bigIncrements('id').primary();
    t.text('error_key').notNullable().unique();
    t.jsonb('message').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.raw('create index errors_created_at_idx on errors (created_at desc)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('errors');
  await knex.schema.dropTableIfExists('tasks');
}
