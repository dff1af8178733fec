// Metrics arrive at a real OTLP/HTTP receiver and agree with the database: xyra.db.operations equals the rows
// in the tables (rows actually inserted, not retries, not no-op conflicts), and the batch metrics equal the
// runs on record. The last export happens on shutdown. Both OTLP encodings: protobuf (the default) and JSON,
// each decoded by the receiver with a real decoder.
import { expect, it } from 'vitest';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { startOtlpReceiver } from './support/otlpReceiver.js';
import { isReady, READY_TIMEOUT_MS, startServiceProcess } from './support/serviceProcess.js';
import { ingest, rowCounts, startPipelineService } from './pipelineSupport.js';

it('exports xyra.db.operations over OTLP/HTTP protobuf by default, equal to the rows in tasks and errors', async () => {
  const receiver = await startOtlpReceiver();
  const appUrl = await createMigratedTestDatabase('metrics');
  const service = await startPipelineService(appUrl, {
    PIPELINE_FAIL_IDS: '50,51',
    OTEL_METRICS_EXPORTER: 'otlp', // no OTEL_EXPORTER_OTLP_*PROTOCOL: the spec's default, http/protobuf
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    // Only the shutdown flush exports (proves shutdown flushes): an hour, as a minute was outlasted by this test on
    // a loaded machine (78 s in a full run at load 12-16, red with a periodic export before the stop).
    OTEL_METRIC_EXPORT_INTERVAL: '3600000',
  });
  try {
    const first = await ingest(appUrl, 'data/tasks_100.json');
    expect(first.code, first.stderr).toBe(0);
    // Same records in other chunks: every insert is a no-op conflict and must not count.
    const again = await ingest(appUrl, 'data/tasks_100.json', ['--wait', '--json', '--chunk-size', '30']);
    expect(again.code, again.stderr).toBe(0);
    const malformed = await ingest(appUrl, 'data/malformed_records.json');
    expect(malformed.code, malformed.stderr).toBe(0);
    expect(receiver.contentTypes).toEqual([]);
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
    await receiver.close();
  }
  const rows = await rowCounts(appUrl);
  expect(rows).toEqual({ tasks: 98 + 5, errors: 2 + 5 });
  expect(receiver.contentTypes.length).toBeGreaterThan(0);
  expect(new Set(receiver.contentTypes)).toEqual(new Set(['application/x-protobuf']));
  expect(Object.fromEntries(receiver.dbOperations)).toEqual({ insert_task: rows.tasks, insert_error: rows.errors });
});

it('exports over OTLP/HTTP JSON when OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=http/json (it wins over the general variable)', async () => {
  const receiver = await startOtlpReceiver();
  const appUrl = await createMigratedTestDatabase('metricsjson');
  const service = await startPipelineService(appUrl, {
    EXECUTOR_ID: 'metrics-json',
    PIPELINE_FAIL_IDS: '7,8,9',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_METRIC_EXPORT_INTERVAL: '60000',
  });
  try {
    const first = await ingest(appUrl, 'data/tasks_100.json');
    expect(first.code, first.stderr).toBe(0);
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
    await receiver.close();
  }
  const rows = await rowCounts(appUrl);
  expect(rows).toEqual({ tasks: 97, errors: 3 });
  expect(receiver.contentTypes.length).toBeGreaterThan(0);
  expect(new Set(receiver.contentTypes)).toEqual(new Set(['application/json']));
  expect(Object.fromEntries(receiver.dbOperations)).toEqual({ insert_task: rows.tasks, insert_error: rows.errors });
});

it('exports xyra.batch.runs by status and one xyra.batch.schedule_lag record per run, equal to the runs on record', async () => {
  const appUrl = await createMigratedTestDatabase('batchmetrics');
  const batchReceiver = await startOtlpReceiver();
  const service = startServiceProcess({
    DATABASE_URL: appUrl,
    BATCH_CRON: '*/2 * * * * *',
    EXECUTOR_ID: 'metrics-batch',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: batchReceiver.url,
    OTEL_METRIC_EXPORT_INTERVAL: '60000',
  });
  try {
    await service.waitForLog(isReady, READY_TIMEOUT_MS);
    let completed = 0;
    await service.waitForLog((l) => l.msg === 'batch completed' && ++completed >= 3, 30_000);
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
    await batchReceiver.close();
  }
  const rows = await query<{ status: string; n: string }>(
    systemDatabaseUrlOf(appUrl),
    `select (case when serialization = 'portable_json' then value::jsonb else value::jsonb -> 'json' end) ->> 'status' as status,
            count(*) as n
       from dbos.workflow_events where key = 'batch_evaluation_status' group by 1`,
  );
  const onRecord = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  expect(onRecord.completed).toBeGreaterThanOrEqual(3);
  expect(Object.fromEntries(batchReceiver.batchRuns)).toEqual(onRecord);
  expect(batchReceiver.lagCount()).toBe(rows.reduce((n, r) => n + Number(r.n), 0));
});
