// Expiry of staging tables (src/pipeline/stagingExpiry.ts, run by the history retention job): the table of an
// ingestion nobody re-ran (its chunks ended before the cutoff, not ingested since) is dropped; one with a chunk
// still waiting, or ingested since the cutoff, is kept; and an expired ingestion ingested again is staged again
// and accounted for in full.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { writeDataset } from '../src/pipeline/generator.js';
import { chunkAttempts, enqueueDataset, type IngestPlan } from '../src/pipeline/ingest.js';
import { expireStaleStaging } from '../src/pipeline/stagingExpiry.js';
import { withDbosClient } from '../src/runtime/dbosClient.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { ingest, stagedRecords, startPipelineService, tempDir } from './pipelineSupport.js';

let appUrl: string;
let dir: string;

beforeAll(async () => {
  appUrl = await createTestDatabase('stagingexpiry');
  dir = await tempDir('stagingexpiry');
  // Start once so both databases are migrated, then stop: what is enqueued next waits in the queue.
  const first = await startPipelineService(appUrl);
  expect(await first.stop('SIGTERM')).toBe(0);
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Stage and enqueue a dataset with no service running; with `cancel`, cancel every chunk (they never run). */
async function enqueue(name: string, seed: number, cancel: boolean): Promise<{ file: string; plan: IngestPlan }> {
  const file = path.join(dir, `${name}.json`);
  await writeDataset(file, 25, seed, 'json');
  const db = new pg.Client({ connectionString: appUrl });
  await db.connect();
  try {
    return await withDbosClient(
      systemDatabaseUrlOf(appUrl),
      createLogger('warn', new PassThrough()),
      async (client) => {
        const plan = await enqueueDataset(client, db, file, { chunkSize: 10 });
        if (cancel)
          for (const c of (await chunkAttempts(client, plan)).values())
            await client.cancelWorkflow(c.latest.workflowID);
        return { file, plan };
      },
    );
  } finally {
    await db.end();
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('drops the staging table of an idle ingestion whose chunks ended, keeps a waiting one and a recent one; an expired one is staged again when ingested again', async () => {
  const stale = await enqueue('stale', 1, true);
  await enqueue('waiting', 2, false);
  await pause(300);
  const cutoff = new Date();
  await pause(300);
  await enqueue('recent', 3, true);
  for (const d of ['stale', 'waiting', 'recent']) expect(await stagedRecords(appUrl, d), d).toBe(25);

  const app = new pg.Pool({ connectionString: appUrl, max: 2 });
  const sys = new pg.Pool({ connectionString: systemDatabaseUrlOf(appUrl), max: 1 });
  try {
    expect(await expireStaleStaging(app, sys, cutoff)).toEqual([stale.plan.ingestionKey]);
    expect(await stagedRecords(appUrl, 'stale')).toBeNull();
    expect(await stagedRecords(appUrl, 'waiting')).toBe(25); // its chunks are ENQUEUED
    expect(await stagedRecords(appUrl, 'recent')).toBe(25); // ingested after the cutoff
    const [row] = await query<{ staging: string | null; staged_at: Date | null }>(
      appUrl,
      'select staging, staged_at from ingestions where ingestion_key = $1',
      [stale.plan.ingestionKey],
    );
    expect(row).toEqual({ staging: null, staged_at: null });
    expect(await expireStaleStaging(app, sys, cutoff)).toEqual([]); // nothing left to expire
  } finally {
    await app.end();
    await sys.end();
  }

  // Ingested again: staged again, its cancelled chunks re-run, every record accounted for, the table dropped.
  const service = await startPipelineService(appUrl);
  try {
    const again = await ingest(appUrl, stale.file, ['--wait', '--json', '--chunk-size', '10', '--retry-cancelled']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.summary).toMatchObject({ records: 25, no_outcome: 0, cancelled_chunks: 0 });
    expect(again.summary!.tasks + again.summary!.errors.total).toBe(25);
    expect(await stagedRecords(appUrl, 'stale')).toBeNull();
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
  }
});
