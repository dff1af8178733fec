// Metrics arrive at a real OTLP/HTTP receiver and agree with the database: xyra.db.operations equals the rows
// in the tables (rows actually inserted, not retries, not no-op conflicts), and the batch metrics equal the
// runs on record. The last export happens on shutdown.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { isReady, startServiceProcess } from './support/serviceProcess.js';
import { ingest, rowCounts, startPipelineService } from './pipelineSupport.js';

const dataPointSchema = z.object({
  attributes: z.array(z.object({ key: z.string(), value: z.object({ stringValue: z.string().optional() }) })).default([]),
  asInt: z.union([z.number(), z.string()]).optional(),
  asDouble: z.number().optional(),
  timeUnixNano: z.union([z.string(), z.number()]),
});
const exportSchema = z.object({
  resourceMetrics: z.array(
    z.object({
      scopeMetrics: z.array(
        z.object({
          metrics: z.array(
            z.object({
              name: z.string(),
              sum: z.object({ dataPoints: z.array(dataPointSchema) }).optional(),
              histogram: z.object({ dataPoints: z.array(z.object({ count: z.union([z.number(), z.string()]) })) }).optional(),
            }),
          ),
        }),
      ),
    }),
  ),
});

interface Receiver {
  server: http.Server;
  url: string;
  /** Latest cumulative xyra.db.operations per `operation`. */
  latest: Map<string, number>;
  /** Latest cumulative xyra.batch.runs per `status`. */
  batchRuns: Map<string, number>;
  /** Latest cumulative count of xyra.batch.schedule_lag records. */
  lagCount: () => number;
  requests: () => number;
}

/** A minimal OTLP/HTTP (JSON) receiver keeping the latest cumulative values (the SDK's default temporality). */
function startReceiver(): Promise<Receiver> {
  const latest = new Map<string, number>();
  const batchRuns = new Map<string, number>();
  let lagCount = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      if (req.url === '/v1/metrics' && String(req.headers['content-type']).includes('json')) {
        const body = exportSchema.parse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        for (const rm of body.resourceMetrics)
          for (const sm of rm.scopeMetrics)
            for (const m of sm.metrics) {
              const attribute = m.name === 'xyra.db.operations' ? 'operation' : m.name === 'xyra.batch.runs' ? 'status' : undefined;
              const into = m.name === 'xyra.db.operations' ? latest : batchRuns;
              if (attribute) {
                for (const dp of m.sum?.dataPoints ?? []) {
                  const key = dp.attributes.find((a) => a.key === attribute)?.value.stringValue ?? '?';
                  into.set(key, Number(dp.asInt ?? dp.asDouble));
                }
              }
              if (m.name === 'xyra.batch.schedule_lag') {
                lagCount = (m.histogram?.dataPoints ?? []).reduce((n, dp) => n + Number(dp.count), 0);
              }
            }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${port}`, latest, batchRuns, lagCount: () => lagCount, requests: () => requests });
    }),
  );
}

let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => {
  await new Promise((r) => receiver.server.close(r));
});

it('exports xyra.db.operations over OTLP/HTTP, equal to the rows in tasks and errors', async () => {
  const appUrl = await createTestDatabase('metrics');
  const service = await startPipelineService(appUrl, {
    PIPELINE_FAIL_IDS: '50,51',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_METRIC_EXPORT_INTERVAL: '60000', // only the shutdown flush exports: proves shutdown flushes
  });
  try {
    const first = await ingest(appUrl, 'data/tasks_100.json');
    expect(first.code, first.stderr).toBe(0);
    // Same records in other chunks: every insert is a no-op conflict and must not count.
    const again = await ingest(appUrl, 'data/tasks_100.json', ['--wait', '--json', '--chunk-size', '30']);
    expect(again.code, again.stderr).toBe(0);
    const malformed = await ingest(appUrl, 'data/malformed_records.json');
    expect(malformed.code, malformed.stderr).toBe(0);
    expect(receiver.requests()).toBe(0);
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
  }
  const rows = await rowCounts(appUrl);
  expect(rows).toEqual({ tasks: 98 + 5, errors: 2 + 5 });
  expect(Object.fromEntries(receiver.latest)).toEqual({ insert_task: rows.tasks, insert_error: rows.errors });
});

it('exports xyra.batch.runs by status and one xyra.batch.schedule_lag record per run, equal to the runs on record', async () => {
  const appUrl = await createTestDatabase('batchmetrics');
  const batchReceiver = await startReceiver();
  const service = startServiceProcess({
    DATABASE_URL: appUrl,
    BATCH_CRON: '*/2 * * * * *',
    EXECUTOR_ID: 'metrics-batch',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: batchReceiver.url,
    OTEL_METRIC_EXPORT_INTERVAL: '60000',
  });
  try {
    await service.waitForLog(isReady, 60_000);
    let completed = 0;
    await service.waitForLog((l) => l.msg === 'batch completed' && ++completed >= 3, 30_000);
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
    await new Promise((r) => batchReceiver.server.close(r));
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

