// HISTORY_RETENTION: a real service with a retention of a few seconds deletes finished workflows (batch runs and
// chunk workflows) with everything DBOS keeps for them, leaves ENQUEUED work and every tasks/errors row alone,
// and `xyra history` / `xyra stats` keep working on the pruned history (stats saying older runs were pruned).
import { DBOSClient } from '@dbos-inc/dbos-sdk';
import { expect, it } from 'vitest';
import { z } from 'zod';
import { retentionCron } from '../src/ops/retention.js';
import { prunedBefore } from '../src/ops/statsReport.js';
import { APP_NAME } from '../src/runtime/dbosClient.js';
import { FINISHED_WORKFLOW_STATES } from '../src/runtime/workflowStates.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { runCli } from './support/serviceProcess.js';
import { ingest, rowCounts, serviceEnv, startPipelineService } from './pipelineSupport.js';

/** Every DBOS 5.3 table that holds rows of a workflow (see `\d dbos.*`: four cascade from workflow_status). */
const WORKFLOW_TABLES = [
  'workflow_status',
  'workflow_input',
  'workflow_output',
  'operation_outputs',
  'workflow_events',
  'workflow_events_history',
  'notifications',
  'streams',
] as const;

async function rowsPerTable(sysUrl: string, ids: string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of WORKFLOW_TABLES) {
    const column = table === 'notifications' ? 'destination_uuid' : 'workflow_uuid';
    const [row] = await query<{ n: string }>(
      sysUrl,
      `select count(*) as n from dbos.${table} where ${column} = any($1)`,
      [ids],
    );
    counts[table] = Number(row!.n);
  }
  return counts;
}

const until = async (what: string, check: () => Promise<boolean>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
};

it('runs the cleanup every min(1 h, retention ÷ 4), on a period a cron fires evenly', () => {
  expect(retentionCron(30 * 86_400_000)).toBe('0 0 * * * *');
  expect(retentionCron(3_600_000)).toBe('0 */15 * * * *');
  expect(retentionCron(10 * 60_000)).toBe('0 */2 * * * *'); // 150 s → every 2 min, never less often than asked
  expect(retentionCron(8_000)).toBe('*/2 * * * * *');
  expect(retentionCron(1_000)).toBe('*/1 * * * * *');
});

it('says runs were pruned only when the stats window reaches further back than the retention', () => {
  const now = new Date('2026-11-23T12:00:00Z');
  expect(prunedBefore(3_600_000, 8_000, now)).toBe('2026-11-23T11:59:52.000Z');
  expect(prunedBefore(5_000, 8_000, now)).toBeNull();
});

it('deletes finished runs and chunks older than HISTORY_RETENTION, keeps ENQUEUED work and all tasks/errors rows', async () => {
  const appUrl = await createMigratedTestDatabase('retention');
  const sysUrl = systemDatabaseUrlOf(appUrl);
  const retention = { HISTORY_RETENTION: '5s' };
  const common = { EXECUTOR_ID: 'retention-test', BATCH_CRON: '*/2 * * * * *', PIPELINE_FAIL_IDS: '5,6' };
  const scheduleOf = async () =>
    (
      await query<{ schedule: string }>(
        sysUrl,
        `select schedule from dbos.workflow_schedules where schedule_name = 'history-retention'`,
      )
    )[0]?.schedule;

  // First a retention of an hour: history accumulates and nothing is pruned while we take stock.
  const first = await startPipelineService(appUrl, { ...common, HISTORY_RETENTION: '1h' });
  let rowsBefore: Awaited<ReturnType<typeof rowCounts>>;
  try {
    expect(await scheduleOf()).toBe('0 */15 * * * *');
    // Work that must survive: a chunk workflow waiting on a queue no replica serves.
    const client = await DBOSClient.create({ systemDatabaseUrl: sysUrl, applicationName: APP_NAME });
    try {
      await client.enqueue(
        {
          queueName: 'parked-by-retention-test',
          workflowName: 'processChunk',
          workflowClassName: 'TaskPipeline',
          workflowID: 'parked-chunk',
        },
        { parked: true },
      );
    } finally {
      await client.destroy();
    }
    const ingested = await ingest(appUrl, 'data/tasks_100.json', ['--wait', '--json', '--chunk-size', '30']);
    expect(ingested.code, ingested.stderr).toBe(0);
    rowsBefore = await rowCounts(appUrl);
    expect(rowsBefore).toEqual({ tasks: 98, errors: 2 });
    await until(
      'two finished batch runs',
      async () => {
        const [r] = await query<{ n: string }>(
          sysUrl,
          `select count(*) as n from dbos.workflow_status where workflow_uuid like 'sched-evaluation-batch-%' and status = 'SUCCESS'`,
        );
        return Number(r!.n) >= 2;
      },
      30_000,
    );
  } finally {
    expect(await first.stop('SIGTERM')).toBe(0);
  }
  // Everything finished now is older than 5 s once the second service runs its cleanup.
  const doomed = (
    await query<{ id: string }>(
      sysUrl,
      `select workflow_uuid as id from dbos.workflow_status
        where status = any($1) and (workflow_uuid like 'sched-evaluation-batch-%' or workflow_uuid like 'ingest:tasks_100:%')`,
      [[...FINISHED_WORKFLOW_STATES]],
    )
  ).map((r) => r.id);
  expect(doomed.filter((id) => id.startsWith('ingest:')).length).toBe(4);
  const before = await rowsPerTable(sysUrl, doomed);
  for (const table of [
    'workflow_status',
    'workflow_input',
    'workflow_output',
    'operation_outputs',
    'workflow_events',
    'workflow_events_history',
  ]) {
    expect(before[table], table).toBeGreaterThan(0);
  }

  const service = await startPipelineService(appUrl, { ...common, ...retention });
  try {
    expect(await scheduleOf()).toBe('*/1 * * * * *'); // 5 s ÷ 4 → every second
    await until(
      'the cleanup to delete them',
      async () => (await rowsPerTable(sysUrl, doomed)).workflow_status === 0,
      30_000,
    );
    expect(await rowsPerTable(sysUrl, doomed)).toEqual(Object.fromEntries(WORKFLOW_TABLES.map((t) => [t, 0])));
    await service.waitForLog((l) => l.msg === 'history pruned', 5_000);

    const parked = await query<{ status: string; inputs: string }>(
      sysUrl,
      `select s.status, i.inputs from dbos.workflow_status s join dbos.workflow_input i using (workflow_uuid) where workflow_uuid = 'parked-chunk'`,
    );
    expect(parked.map((p) => p.status)).toEqual(['ENQUEUED']);
    expect(await rowCounts(appUrl)).toEqual(rowsBefore);

    // The CLI on a pruned history: history lists what is left, stats says the long window is incomplete.
    // The service stops first, so no new slot lands between the two commands.
    expect(await service.stop('SIGTERM')).toBe(0);
    const cliEnv = { ...serviceEnv(appUrl), ...retention };
    const history = await runCli(['history', '--json', '--limit', '1000'], cliEnv);
    expect(history.code, history.stderr).toBe(0);
    const runs = z.array(z.object({ workflow_id: z.string() })).parse(JSON.parse(history.stdout));
    expect(runs.filter((r) => doomed.includes(r.workflow_id))).toEqual([]);
    const long = await runCli(['stats', '--since', '1h', '--json'], cliEnv);
    expect(long.code, long.stderr).toBe(0);
    const longStats = z
      .object({ runs: z.number(), pruned_before: z.string().nullable() })
      .parse(JSON.parse(long.stdout));
    expect(longStats.pruned_before).not.toBeNull();
    expect(longStats.runs).toBe(runs.length);
    const text = await runCli(['stats', '--since', '1h'], cliEnv);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('older runs were pruned');
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
  }
}, 150_000); // a service, an ingest and three CLI processes: generous for a shared 2-core machine
