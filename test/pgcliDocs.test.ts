// Every SQL block of docs/pgcli.md runs against databases filled by a real service, so the docs cannot rot.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installOpsViews } from '../src/ops/views.js';
import { produceOutcomeMix, startPopulatedService, type PopulatedDatabase } from './support/batchRuns.js';
import { query } from './support/database.js';
import { runCli } from './support/serviceProcess.js';

interface DocQuery {
  database: 'system' | 'app';
  sql: string;
  heading: string;
}

function docQueries(): DocQuery[] {
  const text = fs.readFileSync('docs/pgcli.md', 'utf8');
  const out: DocQuery[] = [];
  let heading = '';
  const re = /^(#+ .*)$|^```sql\n([\s\S]*?)^```$/gm;
  for (const m of text.matchAll(re)) {
    if (m[1]) {
      heading = m[1];
      continue;
    }
    const sql = m[2] ?? '';
    const db = /^-- database: (system|app)$/m.exec(sql)?.[1];
    if (db !== 'system' && db !== 'app')
      throw new Error(`SQL block under "${heading}" lacks "-- database: system|app"`);
    out.push({ database: db, sql, heading });
  }
  return out;
}

const queries = docQueries();
let db: PopulatedDatabase;

beforeAll(async () => {
  db = await startPopulatedService('pgclidocs');
  await produceOutcomeMix(db);
  // Real pipeline rows too: record 50 fails its transform (PIPELINE_FAIL_IDS) and lands in `errors`.
  const ingest = await runCli(['ingest', 'data/tasks_100.json', '--wait', '--json'], db.env);
  expect(ingest.code).toBe(0);
  await db.service.stop('SIGTERM', 20_000);
}, 120_000);

afterAll(async () => {
  await db?.service.stop('SIGKILL');
  await db?.simulator.stop();
});

describe('docs/pgcli.md', () => {
  it('has queries for both databases', () => {
    expect(queries.filter((q) => q.database === 'system').length).toBeGreaterThanOrEqual(10);
    expect(queries.filter((q) => q.database === 'app').length).toBeGreaterThanOrEqual(2);
  });

  it.each(queries.map((q, i) => [i + 1, q.heading, q] as const))(
    'query %i (%s) runs and returns rows',
    async (_i, _h, q) => {
      const rows = await query(q.database === 'system' ? db.systemUrl : db.appUrl, q.sql);
      // Blocks marked "(empty when ...)" / "(empty until ...)" may legitimately return nothing.
      if (!/^-- \(empty (when|until) /m.test(q.sql)) expect(rows.length).toBeGreaterThan(0);
    },
  );

  it('the view agrees with the raw tables on status and counts', async () => {
    const view = await query<{ workflow_id: string; status: string; processed: number }>(
      db.systemUrl,
      'select workflow_id, status, processed from xyra.batch_runs order by workflow_id',
    );
    const raw = await query<{ workflow_id: string; status: string; processed: number }>(
      db.systemUrl,
      `select e.workflow_uuid as workflow_id, e.value::jsonb -> 'json' ->> 'status' as status,
              (e.value::jsonb -> 'json' ->> 'processed')::int as processed
       from dbos.workflow_events e where e.key = 'batch_evaluation_status' order by 1`,
    );
    expect(view).toEqual(raw);
  });

  it('installing the views again (every service start) is idempotent', async () => {
    await installOpsViews(db.systemUrl);
    await installOpsViews(db.systemUrl);
    expect((await query(db.systemUrl, 'select count(*)::int as n from xyra.batch_runs'))[0]).toMatchObject({
      n: expect.any(Number),
    });
  });
});
