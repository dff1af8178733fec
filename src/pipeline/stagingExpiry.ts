// Expiry of staging tables (staging.ts). A finished ingestion's last chunk drops its table; one whose chunks
// failed keeps it, so `xyra ingest` of the same file can re-run them. Nobody may ever re-run it: the history
// retention job (ops/retention.ts) then drops the tables of ingestions that nothing has touched for
// HISTORY_RETENTION: not ingested again since the cutoff, and no chunk workflow unfinished or finished since.
// That is also when retention deletes those failed chunk workflows, the only thing the records were kept for.
// The ingestion forgets it was staged (`staged_at` null): a later `xyra ingest` of the file stages it again and
// re-runs what is missing, so nothing is lost but the disk space.
import type pg from 'pg';
import type { Queryable } from '../runtime/databases.js';
import { workflowsActiveSince } from '../runtime/dbosInternals.js';
import { stagingTable } from './staging.js';

/** Ingestions looked at per run: a run stays short, the rest waits for the next one. */
const EXPIRY_BATCH = 100;

/** Drops the staging tables of ingestions idle since `cutoff`; returns the ingestion keys expired. */
export async function expireStaleStaging(appPool: pg.Pool, systemDb: Queryable, cutoff: Date): Promise<string[]> {
  const { rows: candidates } = await appPool.query<{ id: string; ingestion_key: string }>(
    `select id, ingestion_key from ingestions
      where staging is not null and last_ingested_at < $1
      order by id limit $2`,
    [cutoff, EXPIRY_BATCH],
  );
  const expired: string[] = [];
  for (const c of candidates) {
    // Chunk workflow IDs start with `ingest:<ingestion key>:` (ingest.ts).
    if (await workflowsActiveSince(systemDb, `ingest:${c.ingestion_key}:`, cutoff)) continue;
    const client = await appPool.connect();
    try {
      await client.query('begin');
      // The lock `xyra ingest` stages under: an ingest of this file either committed its newer
      // last_ingested_at before (checked below: kept) or waits and then finds nothing staged (stages again).
      await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [`xyra-stage:${c.ingestion_key}`]);
      const { rows } = await client.query(
        'select 1 from ingestions where id = $1 and staging is not null and last_ingested_at < $2 for update',
        [c.id, cutoff],
      );
      if (rows.length > 0) {
        await client.query(`drop table if exists ${stagingTable(Number(c.id))}`);
        await client.query('update ingestions set staging = null, staged_at = null where id = $1', [c.id]);
        expired.push(c.ingestion_key);
      }
      await client.query('commit');
    } catch (e) {
      await client.query('rollback').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }
  return expired;
}
