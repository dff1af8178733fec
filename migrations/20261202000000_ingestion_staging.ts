// Staging of dataset records (src/pipeline/staging.ts): `xyra ingest` COPYs each record once into a table of its
// own ingestion, `xyra_staging.ingestion_<id>`, keyed by position; chunk workflows read their position range from
// it; the last chunk to finish drops it. `ingestions.staging` names the table while it exists, `staged_at` says
// the COPY (and the duplicate verdicts) committed.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.raw('create schema if not exists xyra_staging');
  await knex.schema.alterTable('ingestions', (t) => {
    t.text('staging').nullable();
    t.timestamp('staged_at', { useTz: true }).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('ingestions', (t) => {
    t.dropColumn('staged_at');
    t.dropColumn('staging');
  });
  await knex.schema.raw('drop schema if exists xyra_staging cascade');
}
