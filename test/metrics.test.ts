// The xyra.db.operations counter arrives at a real OTLP/HTTP receiver and equals the rows in the tables:
// rows actually inserted, not retries, not no-op conflicts. The last export happens on shutdown.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { createTestDatabase } from './support/database.js';
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
          metrics: z.array(z.object({ name: z.string(), sum: z.object({ dataPoints: z.array(dataPointSchema) }).optional() })),
        }),
      ),
    }),
  ),
});

/** A minimal OTLP/HTTP (JSON) receiver: keeps the latest cumulative value per `operation`. */
function startReceiver(): Promise<{ server: http.Server; url: string; latest: Map<string, number>; requests: () => number }> {
  const latest = new Map<string, number>();
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
              if (m.name !== 'xyra.db.operations') continue;
              for (const dp of m.sum?.dataPoints ?? []) {
                const op = dp.attributes.find((a) => a.key === 'operation')?.value.stringValue ?? '?';
                latest.set(op, Number(dp.asInt ?? dp.asDouble));
              }
            }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${port}`, latest, requests: () => requests });
    }),
  );
}

let receiver: Awaited<ReturnType<typeof startReceiver>>;
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
    expect(again.summary).toMatchObject({ inserted_tasks: 0, inserted_errors: 0 });
    const malformed = await ingest(appUrl, 'data/malformed_records.json');
    expect(malformed.code, malformed.stderr).toBe(0);
    expect(receiver.requests()).toBe(0);
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
  }
  const rows = await rowCounts(appUrl);
  expect(rows).toEqual({ tasks: 98 + 4, errors: 2 + 6, both: 0 });
  expect(Object.fromEntries(receiver.latest)).toEqual({ insert_task: rows.tasks, insert_error: rows.errors });
});
