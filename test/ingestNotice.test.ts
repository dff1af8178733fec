// `xyra ingest`'s notice to the service (src/pipeline/ingestNotice.ts), against a real Postgres: a notice sent on
// one connection reaches the listener (which pokes the tasks queue's speed control), also after its connection was
// killed and it re-listened.
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { IngestNoticeListener, noticeEnqueued } from '../src/pipeline/ingestNotice.js';
import { createTestDatabase, query } from './support/database.js';

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
