// Upgrade from the version whose `evaluation-batch` DBOS's own scheduler fired: on the first start of our engine
// the schedule is taken over from DBOS's row (its cron and zone, a pause), and the slots after DBOS's last fired
// one (the downtime across the upgrade) are caught up by our engine, not lost; DBOS's row is gone. In-process
// service on real Postgres, real simulator: each caught-up slot calls the API once.
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startService, type Service } from '../src/service.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';

const simulator = new XyraSimulator();
const services: Service[] = [];
const logger = createLogger('warn', new PassThrough());
const MINUTE = 60_000;

beforeAll(async () => {
  await simulator.start();
});

// One DBOS per process: each test's service stops before the next starts.
afterEach(async () => {
  for (const s of services.splice(0)) await s.stop();
});

afterAll(async () => {
  await simulator.stop();
});

/** The same BATCH_* before and after the upgrade; `all`: every missed slot calls the API, one at a time. */
function configOf(appUrl: string, executorId: string) {
  return loadConfig({
    DATABASE_URL: appUrl,
    XYRA_API_URL: simulator.url,
    EXECUTOR_ID: executorId,
    BATCH_CRON: '* * * * *',
    BATCH_TIMEZONE: 'UTC',
    BATCH_CATCH_UP: 'all',
    BATCH_CATCH_UP_WINDOW: '24h',
  });
}

/** A database as the earlier version left it: DBOS's schedule row, no `schedules` row, no audit rows. */
async function earlierVersionDatabase(label: string, status: string, lastFiredAt: Date): Promise<string> {
  const appUrl = await createTestDatabase(label);
  const first = await startService(configOf(appUrl, `${label}-old`), logger, { healthServer: false, schedule: false });
  await first.stop();
  await query(appUrl, 'delete from schedules');
  await query(appUrl, 'delete from schedule_events');
  // The columns DBOS 5.3's applySchedules writes (test/dbosInternals.test.ts pins how we read them).
  await query(
    systemDatabaseUrlOf(appUrl),
    `insert into dbos.workflow_schedules (schedule_id, schedule_name, workflow_name, workflow_class_name, schedule,
       status, context, last_fired_at, automatic_backfill, cron_timezone, queue_name)
     values ('legacy-id', 'evaluation-batch', 'trigger', 'EvaluationBatch', '* * * * *', $1, 'null', $2, true,
       'UTC', 'evaluation-batch')`,
    [status, lastFiredAt.toISOString()],
  );
  return appUrl;
}

async function startUpgraded(appUrl: string, label: string): Promise<Service> {
  const service = await startService(configOf(appUrl, `${label}-new`), logger, { healthServer: false });
  services.push(service);
  return service;
}

function calledSlots(): number[] {
  const prefix = 'sched-evaluation-batch-';
  return simulator.calls
    .filter((c) => c.idempotencyKey?.startsWith(prefix) && /^\d{4}-/.test(c.idempotencyKey.slice(prefix.length)))
    .map((c) => Date.parse(c.idempotencyKey!.slice(prefix.length)));
}

describe("the first start after the upgrade takes over DBOS's schedule", () => {
  it('catches up the slots after the last one DBOS fired, and DBOS keeps no row', async () => {
    // The earlier version last fired five minutes ago and was then down (the upgrade).
    const lastFired = new Date(Math.floor(Date.now() / MINUTE) * MINUTE - 5 * MINUTE);
    const appUrl = await earlierVersionDatabase('legacyup', 'ACTIVE', lastFired);
    const missed = [1, 2, 3, 4, 5].map((i) => lastFired.getTime() + i * MINUTE);
    await startUpgraded(appUrl, 'legacyup');

    const deadline = Date.now() + 60_000;
    while (!missed.every((m) => calledSlots().includes(m)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const called = calledSlots();
    expect(missed.filter((m) => !called.includes(m)).map((m) => new Date(m).toISOString())).toEqual([]);
    expect(called.filter((c) => c <= lastFired.getTime())).toEqual([]); // nothing DBOS had fired already
    expect(new Set(called).size).toBe(called.length); // each once

    const rows = await query<{ cron: string; timezone: string; status: string; managed_by: string }>(
      appUrl,
      `select cron, timezone, status, managed_by from schedules where name = 'evaluation-batch'`,
    );
    expect(rows).toEqual([{ cron: '* * * * *', timezone: 'UTC', status: 'ACTIVE', managed_by: 'env' }]);
    const dbosRows = await query(
      systemDatabaseUrlOf(appUrl),
      `select 1 from dbos.workflow_schedules where schedule_name = 'evaluation-batch'`,
    );
    expect(dbosRows).toEqual([]);
  }, 180_000);

  it('keeps a pause DBOS had: the row is PAUSED, nothing is caught up', async () => {
    const before = calledSlots().length;
    const lastFired = new Date(Math.floor(Date.now() / MINUTE) * MINUTE - 3 * MINUTE);
    const appUrl = await earlierVersionDatabase('legacypause', 'PAUSED', lastFired);
    await startUpgraded(appUrl, 'legacypause');
    const rows = await query<{ status: string; fired_through: Date }>(
      appUrl,
      `select status, fired_through from schedules where name = 'evaluation-batch'`,
    );
    expect(rows).toEqual([{ status: 'PAUSED', fired_through: lastFired }]);
    const events = await query<{ kind: string; by: string }>(
      appUrl,
      `select kind, details ->> 'by' as by from schedule_events where schedule_name = 'evaluation-batch' order by id`,
    );
    expect(events).toEqual([
      { kind: 'created', by: 'env' },
      { kind: 'paused', by: 'upgrade' },
    ]);
    const runs = await query(
      systemDatabaseUrlOf(appUrl),
      `select 1 from dbos.workflow_status where workflow_uuid like 'sched-evaluation-batch-%'`,
    );
    expect(runs).toEqual([]);
    expect(calledSlots().length).toBe(before);
  }, 180_000);
});
