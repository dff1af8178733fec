// Overlap policies per schedule, with a slow API (the simulator answers after 2.5 s) and slots every second,
// so runs overlap: `skip` never has two calls at once and skips the slots in between; `buffer_one` never has
// two at once either, and starts the one waiting run as soon as the run ahead ends; `allow_all` calls the API
// for overlapping slots at once. One real service process on real Postgres.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XyraSimulator } from '../src/simulator/server.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

const LATENCY_MS = 2_500;
let simulator: XyraSimulator;
let service: ServiceProcess | undefined;

beforeAll(async () => {
  simulator = new XyraSimulator();
  await simulator.start();
});

afterAll(async () => {
  await service?.stop('SIGKILL');
  await simulator.stop();
});

/** [start, end] of each API call of `name`, in order of start. */
function intervals(name: string): Array<{ start: number; end: number; slot: number }> {
  return simulator.calls
    .filter((c) => c.idempotencyKey?.startsWith(`sched-${name}-2`))
    .map((c) => {
      const start = Date.parse(c.at);
      return { start, end: start + LATENCY_MS, slot: Date.parse(c.idempotencyKey!.slice(`sched-${name}-`.length)) };
    })
    .sort((a, b) => a.start - b.start);
}

const overlapping = (xs: Array<{ start: number; end: number }>) =>
  xs.slice(1).filter((x, i) => x.start < xs[i]!.end - 50).length;

describe('overlap policies', () => {
  it('skip, buffer_one and allow_all behave as the contract says when a slow API makes runs overlap', async () => {
    const appUrl = await createMigratedTestDatabase('overlap');
    const env = {
      DATABASE_URL: appUrl,
      XYRA_API_URL: simulator.url,
      BATCH_CRON: '0 0 1 1 *',
      EXECUTOR_ID: 'overlap-1',
    };
    service = startServiceProcess(env);
    await service.waitForLog(isReady, READY_TIMEOUT_MS);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xyra-overlap-')), 'overlap.json');
    const schedules = ['skip', 'buffer_one', 'allow_all'].map((overlap) => ({
      name: overlap.replace('_', '-'),
      cron: '* * * * * *',
      overlap,
      payload: { policy: overlap },
    }));
    writeFileSync(file, JSON.stringify({ schedules }));
    simulator.inject({ type: 'latency', ms: LATENCY_MS }); // before the first slot: every run is slow
    const applied = await runCli(['schedule', 'apply', file], env);
    expect(applied.code, applied.stderr).toBe(0);
    const deadline = Date.now() + 60_000;
    while (
      Date.now() < deadline &&
      (intervals('skip').length < 3 || intervals('buffer-one').length < 4 || intervals('allow-all').length < 6)
    ) {
      await new Promise((r) => setTimeout(r, 200));
    }
    await service.stop('SIGKILL'); // calls already made are on the simulator's record
    service = undefined;

    const skip = intervals('skip');
    const buffer = intervals('buffer-one');
    const allow = intervals('allow-all');
    expect(skip.length).toBeGreaterThanOrEqual(3);
    expect(buffer.length).toBeGreaterThanOrEqual(4);
    expect(allow.length).toBeGreaterThanOrEqual(6);
    // skip and buffer_one: never two calls at once; allow_all: overlapping calls.
    expect(overlapping(skip)).toBe(0);
    expect(overlapping(buffer)).toBe(0);
    expect(overlapping(allow)).toBeGreaterThan(2);
    // buffer_one: slots that came due while the call ahead was going on, called after it ended (they waited).
    const waited = buffer.slice(1).filter((c, i) => c.slot < buffer[i]!.end && c.start >= buffer[i]!.end - 50);
    expect(waited.length).toBeGreaterThanOrEqual(2);
    // Slots in between were skipped as in progress (at most one waited), for both.
    const skippedRuns = await query<{ workflow_uuid: string }>(
      systemDatabaseUrlOf(appUrl),
      `select s.workflow_uuid from dbos.workflow_status s join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid
        where e.key = 'batch_evaluation_status' and e.value like '%already in progress%'`,
    );
    const skippedOf = (name: string) => skippedRuns.filter((r) => r.workflow_uuid.startsWith(`sched-${name}-2`)).length;
    expect(skippedOf('skip')).toBeGreaterThan(0);
    expect(skippedOf('buffer-one')).toBeGreaterThan(0);
    expect(skippedOf('allow-all')).toBe(0);
  }, 240_000);
});
