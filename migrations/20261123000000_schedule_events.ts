// What happened to a schedule besides its runs: pauses (with their note), resumes, missed slots summed up
// after a long outage, backfills. `xyra history`, `xyra schedule status` and the dashboard read it.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('schedule_events', (t) => {
    t.bigIncrements('id').primary();
    t.text('schedule_name').notNullable();
    t.text('kind').notNullable(); // see ScheduleEventKind in src/evaluation/scheduleEvents.ts
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('note').nullable();
    t.jsonb('details').notNullable().defaultTo('{}');
  });
  await knex.schema.raw('create index schedule_events_name_at_idx on schedule_events (schedule_name, at desc)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('schedule_events');
}
