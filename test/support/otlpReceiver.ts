// A real OTLP/HTTP metrics receiver for tests: decodes protobuf (protobufjs over the OTLP proto definitions) and
// JSON bodies into one shape, and keeps the latest cumulative values (the SDK's default temporality).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { z } from 'zod';

const dataPointSchema = z.object({
  attributes: z
    .array(z.object({ key: z.string(), value: z.object({ stringValue: z.string().optional() }) }))
    .default([]),
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
              histogram: z
                .object({ dataPoints: z.array(z.object({ count: z.union([z.number(), z.string()]) })) })
                .optional(),
            }),
          ),
        }),
      ),
    }),
  ),
});
type ExportRequest = z.infer<typeof exportSchema>;

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), 'otlp-metrics.proto');
let requestType: protobuf.Type | undefined;

async function decodeProtobuf(body: Buffer): Promise<ExportRequest> {
  requestType ??= (await protobuf.load(PROTO)).lookupType(
    'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest',
  );
  // camelCase field names and 64-bit integers as strings: the same shape as OTLP/JSON.
  const object = requestType.toObject(requestType.decode(body), { longs: String, arrays: true });
  return exportSchema.parse(object);
}

export interface OtlpReceiver {
  url: string;
  /** Latest cumulative xyra.db.operations per `operation`. */
  dbOperations: Map<string, number>;
  /** Latest cumulative xyra.batch.runs per `status`. */
  batchRuns: Map<string, number>;
  /** Latest cumulative count of xyra.batch.schedule_lag records. */
  lagCount(): number;
  /** Content types of the export requests received, in order. */
  contentTypes: string[];
  close(): Promise<void>;
}

export function startOtlpReceiver(): Promise<OtlpReceiver> {
  const dbOperations = new Map<string, number>();
  const batchRuns = new Map<string, number>();
  const contentTypes: string[] = [];
  let lagCount = 0;

  const record = (body: ExportRequest) => {
    for (const rm of body.resourceMetrics)
      for (const sm of rm.scopeMetrics)
        for (const m of sm.metrics) {
          const byAttribute =
            m.name === 'xyra.db.operations'
              ? { into: dbOperations, key: 'operation' }
              : m.name === 'xyra.batch.runs'
                ? { into: batchRuns, key: 'status' }
                : undefined;
          for (const dp of byAttribute ? (m.sum?.dataPoints ?? []) : []) {
            const key = dp.attributes.find((a) => a.key === byAttribute!.key)?.value.stringValue ?? '?';
            byAttribute!.into.set(key, Number(dp.asInt ?? dp.asDouble));
          }
          if (m.name === 'xyra.batch.schedule_lag') {
            lagCount = (m.histogram?.dataPoints ?? []).reduce((n, dp) => n + Number(dp.count), 0);
          }
        }
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const type = String(req.headers['content-type'] ?? '');
      contentTypes.push(type);
      const body = Buffer.concat(chunks);
      const decoded =
        req.url !== '/v1/metrics'
          ? Promise.reject(new Error(`unexpected path ${req.url}`))
          : type.startsWith('application/x-protobuf')
            ? decodeProtobuf(body)
            : type.startsWith('application/json')
              ? Promise.resolve(exportSchema.parse(JSON.parse(body.toString('utf8'))))
              : Promise.reject(new Error(`unexpected content-type ${type}`));
      decoded.then(
        (request) => {
          record(request);
          // An empty ExportMetricsServiceResponse in either encoding.
          if (type.startsWith('application/x-protobuf'))
            res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
          else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        },
        (e: unknown) => res.writeHead(400, { 'content-type': 'text/plain' }).end(String(e)),
      );
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        dbOperations,
        batchRuns,
        contentTypes,
        lagCount: () => lagCount,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    }),
  );
}
