// One row per executor ID that ever claimed this deployment: its heartbeat (written through its claim
// connection, so a heartbeat proves the claim was held at that instant), since when peers have seen its
// claim free, and a generation that every claim and every takeover bumps. Failover (src/runtime/failover.ts)
// decides from it which replica is dead and fences a replica that was taken over.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('executor_claims', (t) => {
    t.text('executor_id').primary();
    t.text('application_version').notNullable();
    t.bigInteger('generation').notNullable().defaultTo(1);
    t.timestamp('claimed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('heartbeat_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('free_since', { useTz: true }).nullable();
    t.timestamp('adopted_at', { useTz: true }).nullable();
    t.text('adopted_by').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('executor_claims');
}
