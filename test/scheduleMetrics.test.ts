// The schedule metrics as the service's own Prometheus exporter serves them (the real OpenTelemetry SDK and
// exporter, in this process): every series carries its schedule, skips count under their reason, and the
// time gauges never move back when an older run (a backfill, a late replica) finishes after a newer one.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import {
  initScheduleMetrics,
  recordBatchRun,
  recordConsecutiveFailures,
  recordLastMissed,
  recordMissedSlots,
  recordNextSlot,
  recordScheduleLag,
  recordSchedulePaused,
  startTelemetry,
  type Telemetry,
} from '../src/telemetry/metrics.js';

let telemetry: Telemetry;
let server: http.Server;
let url = '';

beforeEach(async () => {
  const config = loadConfig({
    DATABASE_URL: 'postgres://unused@127.0.0.1/unused',
    OTEL_METRICS_EXPORTER: 'prometheus',
  });
  telemetry = await startTelemetry(config, createLogger('silent'), 'test');
  const handler = telemetry.metricsHandler!;
  server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
});

afterEach(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await telemetry.shutdown();
});

/** `name{labels}` → value, for the samples of `name`, labels sorted and without the scope label. */
async function samples(name: string): Promise<Record<string, number>> {
  const text = await fetch(url).then((r) => r.text());
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = m[2]!
      .split(',')
      .filter((l) => !l.startsWith('otel_scope_name='))
      .sort()
      .join(',');
    out[labels] = Number(m[3]);
  }
  return out;
}

const at = (iso: string) => new Date(iso);
const sec = (iso: string) => Date.parse(iso) / 1000;

it("counts runs by schedule and status, and skips by schedule and reason (the API's own skip is `api`); skip counters start at 0", async () => {
  initScheduleMetrics('nightly');
  recordBatchRun('nightly', 'completed', at('2026-01-01T00:00:00Z'));
  recordBatchRun('nightly', 'skipped', at('2026-01-02T00:00:00Z'), 'missed');
  recordBatchRun('nightly', 'skipped', at('2026-01-03T00:00:00Z'), 'missed');
  recordBatchRun('smoke', 'skipped', at('2026-01-03T00:00:00Z'));
  recordBatchRun('smoke', 'failed', at('2026-01-03T00:00:00Z'));
  recordScheduleLag('smoke', 12);

  expect(await samples('xyra_batch_runs_total')).toEqual({
    'schedule="nightly",status="completed"': 1,
    'schedule="nightly",status="skipped"': 2,
    'schedule="smoke",status="skipped"': 1,
    'schedule="smoke",status="failed"': 1,
  });
  expect(await samples('xyra_batch_skipped_slots_total')).toEqual({
    'reason="missed",schedule="nightly"': 2,
    'reason="in_progress",schedule="nightly"': 0,
    'reason="paused",schedule="nightly"': 0,
    'reason="not_a_slot",schedule="nightly"': 0,
    'reason="superseded",schedule="nightly"': 0,
    'reason="api",schedule="nightly"': 0,
    'reason="api",schedule="smoke"': 1,
  });
  expect(await samples('xyra_batch_schedule_lag_count')).toEqual({ 'schedule="smoke"': 1 });
});

it('the last completed slot counts completed and triggered runs and never moves back', async () => {
  recordBatchRun('nightly', 'completed', at('2026-01-05T00:00:00Z'));
  recordBatchRun('nightly', 'completed', at('2026-01-03T00:00:00Z')); // a backfilled slot finishing later
  recordBatchRun('nightly', 'failed', at('2026-01-06T00:00:00Z'));
  recordBatchRun('nightly', 'skipped', at('2026-01-06T00:00:00Z'), 'in_progress');
  recordBatchRun('remote', 'triggered', at('2026-01-04T00:00:00Z')); // accepted by the API: runs remotely
  expect(await samples('xyra_batch_last_completed_time')).toEqual({
    'schedule="nightly"': sec('2026-01-05T00:00:00Z'),
    'schedule="remote"': sec('2026-01-04T00:00:00Z'),
  });
});

it('the failure streak is the one of the newest outcome, stamped with its slot', async () => {
  recordConsecutiveFailures('nightly', 2, at('2026-01-05T00:00:00Z'));
  recordConsecutiveFailures('nightly', 7, at('2026-01-04T00:00:00Z')); // an older run finishing late
  recordConsecutiveFailures('smoke', 0, at('2026-01-01T00:00:00Z'));
  expect(await samples('xyra_batch_consecutive_failures')).toEqual({ 'schedule="nightly"': 2, 'schedule="smoke"': 0 });
  expect(await samples('xyra_batch_last_outcome_time')).toEqual({
    'schedule="nightly"': sec('2026-01-05T00:00:00Z'),
    'schedule="smoke"': sec('2026-01-01T00:00:00Z'),
  });
  // A count read from the runs on record is the newest truth, even when an older slot's run brought it
  // (a run recovered after a restart failing after a newer one); the outcome time stays the newest slot's.
  recordConsecutiveFailures('nightly', 3, at('2026-01-04T12:00:00Z'), { fromHistory: true });
  expect(await samples('xyra_batch_consecutive_failures')).toEqual({ 'schedule="nightly"': 3, 'schedule="smoke"': 0 });
  expect((await samples('xyra_batch_last_outcome_time'))['schedule="nightly"']).toBe(sec('2026-01-05T00:00:00Z'));
});

it('the next slot, the interval after it, and the pause state, per schedule', async () => {
  recordNextSlot('nightly', at('2026-01-05T00:00:00Z'), at('2026-01-06T00:00:00Z'));
  recordNextSlot('smoke', at('2026-01-05T00:02:00Z'), at('2026-01-05T00:04:00Z'));
  recordSchedulePaused('nightly', true);
  recordSchedulePaused('smoke', false);
  expect(await samples('xyra_batch_next_slot_time')).toEqual({
    'schedule="nightly"': sec('2026-01-05T00:00:00Z'),
    'schedule="smoke"': sec('2026-01-05T00:02:00Z'),
  });
  expect(await samples('xyra_batch_slot_interval')).toEqual({ 'schedule="nightly"': 86_400, 'schedule="smoke"': 120 });
  expect(await samples('xyra_batch_schedule_paused')).toEqual({ 'schedule="nightly"': 1, 'schedule="smoke"': 0 });
});

it('when a slot was last recorded as missed: 0 (never) from start-up, then the newest of a missed run and a summary beyond the window', async () => {
  initScheduleMetrics('nightly');
  initScheduleMetrics('smoke');
  expect(await samples('xyra_batch_last_missed_time')).toEqual({ 'schedule="nightly"': 0, 'schedule="smoke"': 0 });

  recordMissedSlots('nightly', 40, at('2026-01-05T00:00:00Z')); // summed up at start-up, never run
  const before = Date.now();
  recordBatchRun('nightly', 'skipped', at('2026-01-04T23:00:00Z'), 'missed'); // a run skipped by the catch-up policy, now
  const after = Date.now();
  recordBatchRun('smoke', 'skipped', at('2026-01-04T23:00:00Z'), 'in_progress'); // not missed
  recordLastMissed('nightly', at('2026-01-01T00:00:00Z')); // an older time (a seed) never moves it back
  initScheduleMetrics('nightly'); // nor does a later init

  const missed = await samples('xyra_batch_last_missed_time');
  expect(missed['schedule="smoke"']).toBe(0);
  expect(Math.round(missed['schedule="nightly"']! * 1000)).toBeGreaterThanOrEqual(before);
  expect(Math.round(missed['schedule="nightly"']! * 1000)).toBeLessThanOrEqual(after);
  const skipped = await samples('xyra_batch_skipped_slots_total');
  expect(skipped['reason="missed",schedule="nightly"']).toBe(41);
  expect(skipped['reason="in_progress",schedule="smoke"']).toBe(1);
});
