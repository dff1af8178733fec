// Failover and fencing with real service processes on one database: a replica SIGKILLed for good in the
// middle of an API call or of an ingest, and a replica whose claim connection is cut.
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { writeDataset } from '../src/pipeline/generator.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { eventStatuses } from './support/batchRuns.js';
import { FAILOVER_AFTER_MS, replicaFixture, sleep, tookOver } from './support/replicas.js';
import { isReady, READY_TIMEOUT_MS, runCli } from './support/serviceProcess.js';
import { rowCounts, serviceEnv, summarySchema, tempDir } from './pipelineSupport.js';

const { simulator, start } = replicaFixture();

async function batchRuns(
  appUrl: string,
): Promise<Array<{ id: string; wf: string; executor: string; status: string; scheduled: number }>> {
  const rows = await query<{ workflow_uuid: string; status: string; executor_id: string; value: string | null }>(
    systemDatabaseUrlOf(appUrl),
    `select s.workflow_uuid, s.status, s.executor_id, e.value
       from dbos.workflow_status s
       left join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid and e.key = 'batch_evaluation_status'
      where s.workflow_uuid like 'sched-evaluation-batch-%' order by s.workflow_uuid`,
  );
  return rows.map((r) => ({
    id: r.workflow_uuid,
    wf: r.status,
    executor: r.executor_id,
    status: r.value ? (JSON.parse(r.value) as { json: { status: string } }).json.status : '(none)',
    scheduled: Date.parse(r.workflow_uuid.slice('sched-evaluation-batch-'.length)),
  }));
}

describe('failover: a replica SIGKILLed for good', () => {
  it('a live replica finishes its hung batch run (same idempotency key) and later slots complete', async () => {
    const appUrl = await createTestDatabase('failover_batch');
    const env = {
      DATABASE_URL: appUrl,
      XYRA_API_URL: simulator.url,
      BATCH_CRON: '*/2 * * * * *',
      XYRA_TIMEOUT_MS: '60000',
    };
    simulator.reset();
    simulator.inject({ type: 'hang', count: 1 });
    const a = start({ ...env, EXECUTOR_ID: 'fo-a' });
    await a.waitForLog(isReady, READY_TIMEOUT_MS);
    for (let i = 0; i < 200 && simulator.calls.length === 0; i++) await sleep(50);
    const hung = simulator.calls[0]?.idempotencyKey;
    expect(hung).toMatch(/^sched-evaluation-batch-/);
    const b = start({ ...env, EXECUTOR_ID: 'fo-b' });
    await b.waitForLog(isReady, READY_TIMEOUT_MS);

    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await a.exited;
    const adoption = await b.waitForLog(tookOver, FAILOVER_AFTER_MS + 10_000);
    expect(adoption.deadExecutorId).toBe('fo-a');
    expect(adoption.workflowIds).toContain(hung);
    const finished = await b.waitForLog((l) => l.msg === 'batch completed' && l.workflowId === hung, 15_000);
    const failoverMs = Date.parse(String(finished.time)) - killedAt;
    console.log(
      `failover: SIGKILL of the replica → hung run completed on the survivor in ${failoverMs} ms (FAILOVER_AFTER ${FAILOVER_AFTER_MS} ms)`,
    );

    // Later slots run instead of being skipped as "in progress".
    const after = Date.parse(String(finished.time));
    await b.waitForLog(
      (l) => l.msg === 'batch completed' && Date.parse(String(l.scheduledTime)) > after + 2_000,
      15_000,
    );

    // The dead ID comes back later: nothing it owned runs again.
    const back = start({ ...env, EXECUTOR_ID: 'fo-a' });
    await back.waitForLog(isReady, READY_TIMEOUT_MS);
    await sleep(2_000);
    await Promise.all([back.stop('SIGTERM'), b.stop('SIGTERM')]);

    expect(await eventStatuses(appUrl, hung!)).toEqual(['triggered', 'completed']);
    const attempts = simulator.calls.filter((c) => c.idempotencyKey === hung);
    expect(attempts).toHaveLength(2); // the interrupted attempt on A and the resumed one on B
    const runs = await batchRuns(appUrl);
    const hungRow = runs.find((r) => r.id === hung);
    expect(hungRow).toMatchObject({ wf: 'SUCCESS', executor: 'fo-b', status: 'completed' });
    const later = runs.filter((r) => r.scheduled > after);
    expect(later.length).toBeGreaterThanOrEqual(2);
    for (const r of later) expect(r, r.id).toMatchObject({ wf: 'SUCCESS', status: 'completed' });
    // Every run ended, and no key was called more than once except the resumed one.
    expect(runs.filter((r) => r.wf !== 'SUCCESS')).toEqual([]);
    const perKey = new Map<string, number>();
    for (const c of simulator.calls) perKey.set(c.idempotencyKey ?? '', (perKey.get(c.idempotencyKey ?? '') ?? 0) + 1);
    expect([...perKey].filter(([k, n]) => k !== hung && n > 1)).toEqual([]);
  }, 180_000);

  it('the chunks of an ingest left on a dead replica finish on a live one: every record exactly once', async () => {
    const appUrl = await createTestDatabase('failover_ingest');
    const dir = await tempDir('failover');
    const file = path.join(dir, 'orphans.json');
    await writeDataset(file, 120, 7, 'json');
    const pipelineEnv = {
      PIPELINE_CHUNK_SIZE: '10',
      PIPELINE_CONCURRENCY: '3',
      PIPELINE_STEP_MAX_ATTEMPTS: '100',
      PIPELINE_STEP_INTERVAL_MS: '100',
    };
    const a = start({ ...serviceEnv(appUrl, pipelineEnv), EXECUTOR_ID: 'fo-ingest-a' });
    await a.waitForLog(isReady, READY_TIMEOUT_MS);
    // Hold `tasks` so A's chunk workflows stay PENDING in their insert step.
    const holder = new pg.Client({ connectionString: appUrl });
    await holder.connect();
    await holder.query('begin');
    await holder.query('lock table tasks in access exclusive mode');
    const sys = systemDatabaseUrlOf(appUrl);
    try {
      const ingest = (args: string[]) =>
        runCli(['ingest', file, '--json', ...args], serviceEnv(appUrl, pipelineEnv), 90_000);
      const submitted = await ingest([]);
      expect(submitted.code, submitted.stderr).toBe(0);
      const pendingOnA = async () =>
        (
          await query<{ workflow_uuid: string }>(
            sys,
            `select workflow_uuid from dbos.workflow_status where status = 'PENDING' and executor_id = 'fo-ingest-a' and workflow_uuid like 'ingest:%' order by 1`,
          )
        ).map((r) => r.workflow_uuid);
      for (let i = 0; i < 200 && (await pendingOnA()).length === 0; i++) await sleep(50);
      await sleep(1_000);
      const orphaned = await pendingOnA();
      expect(orphaned.length).toBeGreaterThan(0);
      const b = start({ ...serviceEnv(appUrl, pipelineEnv), EXECUTOR_ID: 'fo-ingest-b' });
      await b.waitForLog(isReady, READY_TIMEOUT_MS);
      a.child.kill('SIGKILL');
      await a.exited;
      await holder.query('commit');
      const adoption = await b.waitForLog(tookOver, FAILOVER_AFTER_MS + 10_000);
      expect(adoption.deadExecutorId).toBe('fo-ingest-a');
      expect([...(adoption.workflowIds as string[])].sort()).toEqual(orphaned);

      const waited = await ingest(['--wait', '--timeout', '60']); // returns once every chunk has finished
      expect(waited.code, waited.stderr).toBe(0);
      const summary = summarySchema.parse(JSON.parse(waited.stdout.trim().split('\n').pop() ?? ''));
      expect(summary).toMatchObject({ records: 120, chunks: 12, failed_chunks: 0, no_outcome: 0 });
      const { tasks } = summary;
      const errors = summary.errors.total;
      expect(tasks + errors).toBe(120);
      expect(await rowCounts(appUrl, 'orphans')).toEqual({ tasks, errors });
      const statuses = await query<{ status: string; n: string }>(
        sys,
        `select status, count(*) as n from dbos.workflow_status where workflow_uuid like 'ingest:%' group by status`,
      );
      expect(statuses.map((s) => [s.status, Number(s.n)])).toEqual([['SUCCESS', 12]]);
      await b.stop('SIGTERM');
    } finally {
      await holder.end().catch(() => undefined);
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
