// A restart with a changed BATCH_CRON is an edit like any other: the downtime before it belongs to the old spec
// and is caught up once, by the old spec's slots; the new cron fires from the restart on; one `updated` audit row
// by `env`. A restart declaring the same again changes nothing. Real service processes, real Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XyraSimulator } from '../src/simulator/server.js';
import { createTestDatabase, query } from './support/database.js';
import { isReady, READY_TIMEOUT_MS, startServiceProcess, type ServiceProcess } from './support/serviceProcess.js';

let simulator: XyraSimulator;
const running: ServiceProcess[] = [];

beforeAll(async () => {
  simulator = new XyraSimulator();
  await simulator.start();
});

afterAll(async () => {
  for (const s of running) await s.stop('SIGKILL');
  await simulator.stop();
});

const slotsCalled = () =>
  simulator.calls
    .map((c) => c.idempotencyKey ?? '')
    .filter((k) => /^sched-evaluation-batch-\d{4}-/.test(k))
    .map((k) => Date.parse(k.slice('sched-evaluation-batch-'.length)))
    .sort((a, b) => a - b);

describe('BATCH_* reconciled at start-up', () => {
  it('catches the downtime up with the old cron, then fires the new one; one audit row', async () => {
    const appUrl = await createTestDatabase('envsched');
    const base = { DATABASE_URL: appUrl, XYRA_API_URL: simulator.url, BATCH_CATCH_UP: 'all', EXECUTOR_ID: 'env-1' };
    const a = startServiceProcess({ ...base, BATCH_CRON: '*/4 * * * * *' });
    running.push(a);
    await a.waitForLog(isReady, READY_TIMEOUT_MS);
    await a.waitForLog((l) => l.msg === 'batch completed', 30_000);
    await a.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 10_000)); // two or three old-cron slots pass with no replica

    const b = startServiceProcess({ ...base, BATCH_CRON: '2-58/4 * * * * *' });
    running.push(b);
    await b.waitForLog(isReady, READY_TIMEOUT_MS);
    const [edit] = await query<{
      details: {
        before: { cron: string };
        after: { cron: string };
        version: number;
        by: string;
        effective_from: string;
      };
    }>(appUrl, `select details from schedule_events where schedule_name = 'evaluation-batch' and kind = 'updated'`);
    expect(edit!.details).toMatchObject({
      before: { cron: '*/4 * * * * *' },
      after: { cron: '2-58/4 * * * * *' },
      version: 2,
      by: 'env',
    });
    const effectiveFrom = Date.parse(edit!.details.effective_from);
    // The downtime's old-cron slots run one after another (BATCH_CATCH_UP=all), the new cron's fire meanwhile:
    // wait until the last old slot before the edit and two new ones have been called.
    const lastOld = Math.floor((effectiveFrom - 1) / 4_000) * 4_000;
    const deadline = Date.now() + 90_000;
    while (
      Date.now() < deadline &&
      !(slotsCalled().includes(lastOld) && slotsCalled().filter((s) => s >= effectiveFrom).length >= 2)
    ) {
      await new Promise((r) => setTimeout(r, 200));
    }
    await b.stop('SIGTERM');

    const slots = slotsCalled();
    expect(new Set(slots).size).toBe(slots.length); // each slot once
    const old = slots.filter((s) => s < effectiveFrom);
    const fresh = slots.filter((s) => s >= effectiveFrom);
    // Old spec: every slot up to the edit, the downtime included, none missing, none of the new cron.
    for (const s of old) expect((s / 1000) % 4).toBe(0);
    expect(old.slice(1).filter((s, i) => s - old[i]! !== 4_000)).toEqual([]);
    expect(old[old.length - 1]).toBe(lastOld);
    // New spec from the edit on.
    expect(fresh.length).toBeGreaterThanOrEqual(2);
    for (const s of fresh) expect((s / 1000) % 4).toBe(2);

    // The same declaration again: no edit.
    const c = startServiceProcess({ ...base, BATCH_CRON: '2-58/4 * * * * *' });
    running.push(c);
    await c.waitForLog(isReady, READY_TIMEOUT_MS);
    await c.stop('SIGTERM');
    const kinds = await query<{ kind: string; by: string }>(
      appUrl,
      `select kind, details ->> 'by' as by from schedule_events where schedule_name = 'evaluation-batch' and kind in ('created', 'updated') order by id`,
    );
    expect(kinds).toEqual([
      { kind: 'created', by: 'env' },
      { kind: 'updated', by: 'env' },
    ]);
  }, 300_000);
});
