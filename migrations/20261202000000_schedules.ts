// Schedules as data (issue 14): one row per named schedule, created, changed and deleted at runtime. The
// engine (src/evaluation/engine.ts) fires every ACTIVE row's slots by our cron rules; `fired_through` is the
// newest slot already handed to a run, so catch-up after downtime is decided here, never by DBOS's matcher.
// Every change bumps `version` and is a `schedule_events` row written in the same transaction.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('schedules', (t) => {
    t.text('name').primary();
    t.text('cron').notNullable();
    t.text('timezone').notNullable();
    t.jsonb('payload').notNullable().defaultTo('{}');
    t.text('catch_up').notNullable();
    t.text('catch_up_window').notNullable(); // as written (`24h`); the engine parses it
    t.text('overlap').notNullable().defaultTo('skip');
    t.integer('pause_after_failures').notNullable().defaultTo(0);
    t.timestamp('start_at', { useTz: true }).nullable();
    t.timestamp('end_at', { useTz: true }).nullable();
    t.text('note').nullable();
    t.text('status').notNullable().defaultTo('ACTIVE');
    t.text('paused_reason').nullable();
    t.integer('version').notNullable().defaultTo(1);
    // The first slot the current version fires (slots before it belong to the previous version).
    t.timestamp('effective_from', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('managed_by').notNullable();
    t.timestamp('fired_through', { useTz: true }).nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.raw(
    `alter table schedules add constraint schedules_status_check check (status in ('ACTIVE', 'PAUSED'))`,
  );
  await knex.schema.raw(
    `alter table schedules add constraint schedules_overlap_check check (overlap in ('skip', 'buffer_one', 'allow_all'))`,
  );
  await knex.schema.raw(
    `create index schedule_events_version_idx on schedule_events (schedule_name, ((details ->> 'version')))`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.raw('drop index if exists schedule_events_version_idx');
  await knex.schema.dropTableIfExists('schedules');
}
