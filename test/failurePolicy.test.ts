// BATCH_PAUSE_AFTER_FAILURES against an API answering 500 (XYRA_MAX_ATTEMPTS=1, so each run fails at once):
// a completed run resets the count (2 failures + 1 success + 2 failures does not pause), the count survives
// a SIGKILLed replica (it is read from the runs on record), and the third consecutive failure pauses the
// schedule with the reason as its note, one `paused` record, an error log and the gauge at the count.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { z } from 'zod';
import { XyraSimulator } from '../src/simulator/server.js';
import { createMigratedTestDatabase, query } from './support/database.js';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type LogLine,
  type ServiceProcess,
} from './support/serviceProcess.js';

const simulator = new XyraSimulator();
const running: ServiceProcess[] = [];
let gaugeValues: number[] = [];
const receiver = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    // OTLP/JSON: find the gauge's data points wherever the exporter nests them.
    const body = JSON.parse(text) as {
      resourceMetrics: {
        scopeMetrics: {
          metrics: { name: string; gauge?: { dataPoints: { asInt?: string | number; asDouble?: number }[] } }[];
        }[];
      }[];
    };
    for (const rm of body.resourceMetrics)
      for (const sm of rm.scopeMetrics)
        for (const m of sm.metrics)
          if (m.name === 'xyra.batch.consecutive_failures')
            gaugeValues.push(...(m.gauge?.dataPoints ?? []).map((d) => Number(d.asInt ?? d.asDouble)));
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  await simulator.stop();
  await new Promise((r) => receiver.close(r));
});

const historyRow = z.object({
  workflow_id: z.string(),
  status: z.string(),
  scheduled_time: z.string(),
  actual_time: z.string().nullable(),
});
const pausedEvent = z.object({
  note: z.string(),
  details: z.object({ by: z.string(), consecutive_failures: z.number(), workflow_id: z.string() }),
  at: z.date(),
});

it('pauses after 3 consecutive failed runs, counting across a SIGKILL, and a completed run resets the count', async () => {
  const apiUrl = await simulator.start();
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  const appUrl = await createMigratedTestDatabase('failpolicy');
  const env = {
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    BATCH_CRON: '* * * * * *',
    XYRA_MAX_ATTEMPTS: '1',
    XYRA_TIMEOUT_MS: '3000',
    BATCH_PAUSE_AFTER_FAILURES: '3',
    EXECUTOR_ID: 'failpolicy-a',
    SHUTDOWN_TIMEOUT_MS: '5000',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_METRIC_EXPORT_INTERVAL: '60000', // only the shutdown flush: the gauge's last value
  };
  const after = (p: ServiceProcess, i: number, msg: string) => (l: LogLine) => p.logs.indexOf(l) >= i && l.msg === msg;
  const failed = (p: ServiceProcess, from: number) => p.logs.slice(from).filter((l) => l.msg === 'batch failed').length;

  // 2 failures, then the API recovers: a completed run.
  simulator.inject({ type: 'status', status: 500, count: 2 });
  const a = startServiceProcess(env);
  running.push(a);
  await a.waitForLog(isReady, READY_TIMEOUT_MS);
  await a.waitForLog(after(a, 0, 'batch completed'), 20_000);
  expect(failed(a, 0)).toBe(2);
  // 2 more failures, then a completion: had the completion not reset the count, the 4th failure would pause.
  let mark = a.logs.length;
  simulator.inject({ type: 'status', status: 500, count: 2 });
  await a.waitForLog(after(a, mark, 'batch completed'), 20_000);
  expect(failed(a, mark)).toBe(2);
  expect(await query(appUrl, `select * from schedule_events where kind = 'paused'`)).toEqual([]);

  // The API goes down for good. After 2 failures this replica dies (no shutdown, nothing in memory kept).
  mark = a.logs.length;
  simulator.inject({ type: 'status', status: 500, count: 10_000 });
  await a.waitForLog((l) => a.logs.indexOf(l) >= mark && l.msg === 'batch failed' && failed(a, mark) === 2, 20_000);
  await a.stop('SIGKILL');
  expect(await query(appUrl, `select * from schedule_events where kind = 'paused'`)).toEqual([]);

  // A new replica: its first failed run is the third in a row.
  const b = startServiceProcess(env); // same executor: it recovers what the dead one left
  running.push(b);
  const pauseLog = await b.waitForLog((l) => l.msg === 'schedule paused by the failure policy', 30_000);
  expect(pauseLog).toMatchObject({ level: 'error', consecutiveFailures: 3, pauseAfterFailures: 3 });
  expect(failed(b, 0)).toBeGreaterThanOrEqual(1);

  const events = (await query(appUrl, `select note, details, at from schedule_events where kind = 'paused'`)).map((r) =>
    pausedEvent.parse(r),
  );
  expect(events).toHaveLength(1);
  expect(events[0]!.details).toMatchObject({ by: 'failure_policy', consecutive_failures: 3 });
  expect(events[0]!.note).toMatch(
    /^paused by the failure policy after 3 consecutive failed runs \(pause_after_failures=3\); last error: .*500/,
  );
  const [sched] = await query<{ status: string }>(
    appUrl,
    `select status from schedules where name = 'evaluation-batch'`,
  );
  expect(sched!.status).toBe('PAUSED');

  // No further runs once the replica has seen the pause (DBOS re-reads schedules every 5 s).
  const pausedAt = events[0]!.at.getTime();
  await new Promise((r) => setTimeout(r, 7_500));
  const cliEnv = { DATABASE_URL: appUrl, BATCH_PAUSE_AFTER_FAILURES: '3' };
  const hist = await runCli(['history', '--json', '--limit', '500'], cliEnv);
  expect(hist.code, hist.stderr).toBe(0);
  const runs = z.array(historyRow).parse(JSON.parse(hist.stdout));
  expect(runs.filter((r) => Date.parse(r.scheduled_time) > pausedAt + 6_000)).toEqual([]);
  // The pausing run is the newest run with an outcome, and every run after the last completed one failed
  // or was skipped by our own catch-up (the SIGKILL gap), never by the API.
  const pausing = runs.find((r) => r.workflow_id === events[0]!.details.workflow_id);
  expect(pausing?.status).toBe('failed');

  // `schedule status` tells the operator why.
  const st = await runCli(['schedule', 'status', '--json'], cliEnv);
  expect(st.code, st.stderr).toBe(0);
  const status = z
    .object({
      status: z.string(),
      paused_reason: z.string().nullable(),
      paused_by: z.string().nullable(),
      consecutive_failures: z.number(),
      next_slots: z.array(z.string()),
    })
    .parse(JSON.parse(st.stdout));
  expect(status).toMatchObject({
    status: 'PAUSED',
    paused_reason: events[0]!.note,
    paused_by: 'failure_policy',
    next_slots: [],
  });
  const lastCompleted = runs.findIndex((r) => r.status === 'completed');
  expect(status.consecutive_failures).toBe(runs.slice(0, lastCompleted).filter((r) => r.status === 'failed').length);
  expect(status.consecutive_failures).toBeGreaterThanOrEqual(3);
  const text = await runCli(['schedule', 'status'], cliEnv);
  expect(text.stdout).toMatch(/^schedule evaluation-batch: PAUSED \(by failure_policy\)$/m);
  expect(text.stdout).toMatch(/paused .*paused by the failure policy after 3 consecutive failed runs/);

  // The gauge's last value (flushed on shutdown) is the count on record.
  gaugeValues = [];
  expect(await b.stop('SIGTERM', 20_000)).toBe(0);
  expect(gaugeValues.at(-1)).toBe(status.consecutive_failures);
}, 90_000);
