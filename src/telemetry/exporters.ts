// Metric readers chosen by OTEL_METRICS_EXPORTER, built from the OpenTelemetry exporters (no hand-written wire
// formats): `console`, `otlp` (protobuf or JSON over HTTP, by OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL) and
// `prometheus` (pull: a request handler the service mounts at `/metrics` on its own port).
// Each exporter package is imported only when configured: together they cost about 0.2 s of every start-up
// (and of memory) that a service exporting nothing, the default, never uses.
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ConsoleMetricExporter,
  PeriodicExportingMetricReader,
  type IMetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import type { Config, OtlpProtocol } from '../config.js';
import type { Logger } from '../logger.js';

/** Serves the current metrics in the Prometheus text format. */
export type MetricsRequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface MetricReaders {
  readers: IMetricReader[];
  /** Set when `prometheus` is among the exporters. */
  prometheusHandler?: MetricsRequestHandler;
}

export const DEFAULT_OTLP_METRICS_URL = 'http://localhost:4318/v1/metrics';

async function otlpExporter(protocol: OtlpProtocol, url: string): Promise<PushMetricExporter> {
  // Both exporters also read OTEL_EXPORTER_OTLP_* (headers, timeout, temporality) themselves; the URL is passed
  // so what we log is what they use.
  if (protocol === 'http/json') {
    const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-http');
    return new OTLPMetricExporter({ url });
  }
  const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-proto');
  return new OTLPMetricExporter({ url });
}

export async function createMetricReaders(metrics: Config['metrics'], logger: Logger): Promise<MetricReaders> {
  const readers: IMetricReader[] = [];
  let prometheusHandler: MetricsRequestHandler | undefined;
  const exportIntervalMillis = metrics.exportIntervalMs;
  const exportTimeoutMillis = Math.min(exportIntervalMillis, 30_000);
  const periodic = (exporter: PushMetricExporter) =>
    new PeriodicExportingMetricReader({ exporter, exportIntervalMillis, exportTimeoutMillis });

  for (const name of metrics.exporters) {
    if (name === 'console') {
      readers.push(periodic(new ConsoleMetricExporter()));
    } else if (name === 'otlp') {
      const url = metrics.otlpEndpoint ?? DEFAULT_OTLP_METRICS_URL;
      readers.push(periodic(await otlpExporter(metrics.otlpProtocol, url)));
      logger.info({ url, protocol: metrics.otlpProtocol }, 'metrics: exporting OTLP/HTTP');
    } else {
      // preventServerStart: no second port; the service's HTTP server calls the handler for GET /metrics.
      const { PrometheusExporter } = await import('@opentelemetry/exporter-prometheus');
      const exporter = new PrometheusExporter({ preventServerStart: true });
      readers.push(exporter);
      prometheusHandler = (req, res) => exporter.getMetricsRequestHandler(req, res);
      logger.info('metrics: serving Prometheus text format at /metrics');
    }
  }
  return { readers, prometheusHandler };
}
