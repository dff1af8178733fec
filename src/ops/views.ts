// Operator views in the DBOS system database: `xyra.batch_runs` and `xyra.batch_events`, so that psql
// queries (docs/pgcli.md) read decoded columns instead of superjson text.
//
// Why the system database, in a schema of our own: the views read dbos.* tables, and a view cannot read
// another database, so they cannot live in the app database (our knex migrations' target). Why dropped
// before DBOS migrates and recreated after: Postgres refuses to alter or drop a column a view depends on,
// so a view left in place could make a future DBOS system-schema migration fail.
import pg from 'pg';
import { BATCH_EVENTS_SELECT, BATCH_RUNS_SELECT } from './batchRunsSql.js';

export const OPS_SCHEMA = 'xyra';
const VIEWS_LOCK = 'xyra-scheduler:ops-views';

async function inTransaction(systemDatabaseUrl: string, fn: (c: pg.Client) => Promise<void>): Promise<void> {
  const client = new pg.Client({ connectionString: systemDatabaseUrl, application_name: 'xyra-scheduler-views' });
  await client.connect();
  try {
    await client.query('begin');
    // Replicas starting together would otherwise race on the catalog ("tuple concurrently updated").
    await client.query('select pg_advisory_xact_lock(hashtext($1))', [VIEWS_LOCK]);
    await fn(client);
    await client.query('commit');
  } catch (e) {
    await client.query('rollback').catch(() => undefined);
    throw e;
  } finally {
    await client.end();
  }
}

/** (Re)creates the views; call after DBOS has migrated the system database (after DBOS.launch / DBOS.migrate). */
export async function installOpsViews(systemDatabaseUrl: string): Promise<void> {
  await inTransaction(systemDatabaseUrl, async (c) => {
    await c.query(`create schema if not exists ${OPS_SCHEMA}`);
    // Drop first: CREATE OR REPLACE cannot remove or rename columns of an older definition.
    await c.query(`drop view if exists ${OPS_SCHEMA}.batch_runs, ${OPS_SCHEMA}.batch_events`);
    await c.query(`create view ${OPS_SCHEMA}.batch_runs as ${BATCH_RUNS_SELECT}`);
    await c.query(`create view ${OPS_SCHEMA}.batch_events as ${BATCH_EVENTS_SELECT}`);
    await c.query(
      `comment on view ${OPS_SCHEMA}.batch_runs is 'One row per evaluation batch run (xyra-scheduler); see docs/pgcli.md'`,
    );
  });
}

/** Drops the views before DBOS migrates its schema; a system database that does not exist yet is fine. */
export async function dropOpsViews(systemDatabaseUrl: string): Promise<void> {
  try {
    await inTransaction(systemDatabaseUrl, async (c) => {
      await c.query(`drop view if exists ${OPS_SCHEMA}.batch_runs, ${OPS_SCHEMA}.batch_events`);
    });
  } catch (e) {
    if ((e as { code?: string }).code === '3D000') return; // invalid_catalog_name: DBOS creates it at launch
    throw e;
  }
}
