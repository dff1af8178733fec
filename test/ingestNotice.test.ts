// `xyra ingest`'s notice to the service (src/pipeline/ingestNotice.ts), against a real Postgres: a notice sent on
// one connection reaches the listener (which pokes the tasks queue's speed control), also after its connection was
// killed and it re-listened; and `enqueueDataset` (what `xyra ingest` runs) sends it.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { writeDataset } from '../src/pipeline/generator.js';
import { enqueueDataset } from '../src/pipeline/ingest.js';
import { IngestNoticeListener, noticeEnqueued } from '../src/pipeline/ingestNotice.js';
import { withDbosClient } from '../src/runtime/dbosClient.js';
import { createMigratedTestDatabase, createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { tempDir } from './pipelineSupport.js';

let appUrl: string;
let sender: pg.Client;

beforeAll(async () => {
  appUrl = await createTestDatabase('ingest_notice');
  sender = new pg.Client({ connectionString: appUrl });
  await sender.connect();
});

afterAll(async () => {
  await sender?.end();
});

/** Sends notices until `seen()` holds (a notice sent before LISTEN took effect is not delivered), bounded. */
async function noticeUntil(seen: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!seen()) {
    if (Date.now() > deadline) throw new Error('no notice arrived within 20 s');
    await noticeEnqueued(sender);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('delivers an ingest notice to the listener, and again after its connection is killed', async () => {
  let pokes = 0;
  const listener = new IngestNoticeListener(appUrl, () => pokes++, createLogger('silent'));
  await listener.start();
  try {
    await noticeEnqueued(sender);
    await noticeUntil(() => pokes >= 1);
    expect(pokes).toBeGreaterThanOrEqual(1);

    const killed = await query<{ n: number }>(
      appUrl,
      `select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = 'xyra-ingest-listen' and datname = current_database()`,
    );
    expect(killed[0]?.n).toBe(1);
    const before = pokes;
    await noticeUntil(() => pokes > before);
    expect(pokes).toBeGreaterThan(before);
  } finally {
    await listener.stop();
  }
  const after = pokes;
  await noticeEnqueued(sender);
  await new Promise((r) => setTimeout(r, 300));
  expect(pokes).toBe(after); // stopped: no more pokes
});

it('enqueueDataset announces the chunks it enqueued, with no progress callback (as `xyra ingest` calls it)', async () => {
  // Before: the count sat inside `onProgress?.(…)`, so without a callback it never reached 1 and the notice never
  // went out; the service found the chunks at its next idle poll (~3 s of a 100,000-record ingest's 5.5 s).
  const url = await createMigratedTestDatabase('ingest_notice_enqueue');
  const dir = await tempDir('ingest_notice');
  const file = path.join(dir, 'announced.json');
  await writeDataset(file, 30, 7, 'json');
  let pokes = 0;
  const listener = new IngestNoticeListener(url, () => pokes++, createLogger('silent'));
  await listener.start();
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const plan = await withDbosClient(systemDatabaseUrlOf(url), createLogger('warn', new PassThrough()), (client) =>
      enqueueDataset(client, db, file, { chunkSize: 10 }),
    );
    expect(plan.chunks).toBe(3);
    // A marker notice on the same connection: notices arrive in the order they were sent, so once it is in,
    // everything the ingest sent before it is too.
    await noticeEnqueued(db);
    const deadline = Date.now() + 20_000;
    while (pokes < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(pokes).toBe(2); // the ingest's one (once per ingest, not once per chunk) and the marker
  } finally {
    await db.end();
    await listener.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
