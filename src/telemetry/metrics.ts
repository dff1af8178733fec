// OpenTelemetry metrics: one MeterProvider whose readers are chosen by OTEL_METRICS_EXPORTER, and the
// service's instruments. Instruments are created on the global API meter, so code that records works the
// same whether or not an exporter is configured (no exporter: records go nowhere).
import { metrics, type Counter, type Gauge, type Histogram } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  ConsoleMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type IMetricReader,
} from '@opentelemetry/sdk-metrics';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';

const METER_NAME = 'xyra-scheduler';

export type DbOperation = 'insert_task' | 'insert_error';

interface Instruments {
  dbOperations: Counter;
  batchRuns: Counter;
  scheduleLag: Histogram;
  consecutiveFailures: Gauge;
}

let instruments: Instruments | undefined;

function get(): Instruments {
  if (!instruments) {
    const meter = metrics.getMeter(METER_NAME);
    instruments = {
      dbOperations: meter.createCounter('xyra.db.operations', {
        description: 'Rows actually inserted into the app tables (no-op conflicts and retries not counted)',
      }),
      batchRuns: meter.createCounter('xyra.batch.runs', { description: 'Evaluation batch runs by final status' }),
      scheduleLag: meter.createHistogram('xyra.batch.schedule_lag', {
        description: 'Time from a slot\'s scheduled time to the batch run\'s actual start',
        unit: 'ms',
      }),
      consecutiveFailures: meter.createGauge('xyra.batch.consecutive_failures', {
        description: 'Consecutive failed batch runs, as of the latest finished run (see BATCH_PAUSE_AFTER_FAILURES)',
      }),
    };
  }
  return instruments;
}

export function recordDbOperations(operation: DbOperation, rows: number): void {
  if (rows > 0) get().dbOperations.add(rows, { operation });
}

export function recordBatchRun(status: string): void {
  get().batchRuns.add(1, { status });
}

export function recordScheduleLag(ms: number): void {
  get().scheduleLag.record(Math.max(0, ms));
}

export function recordConsecutiveFailures(count: number): void {
  get().consecutiveFailures.record(count);
}

export interface Telemetry {
  /** Export what is pending and stop the readers. */
  shutdown(): Promise<void>;
  forceFlush(): Promise<void>;
}

export function startTelemetry(config: Config, logger: Logger, serviceVersion: string): Telemetry {
  const readers: IMetricReader[] = [];
  const exportIntervalMillis = config.metrics.exportIntervalMs;
  const exportTimeoutMillis = Math.min(exportIntervalMillis, 30_000);
  for (const name of config.metrics.exporters) {
    if (name === 'console') {
      readers.push(new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), exportIntervalMillis, exportTimeoutMillis }));
    } else if (name === 'otlp') {
      // The exporter reads OTEL_EXPORTER_OTLP_* itself; we pass the resolved URL so what we log is what it uses.
      const url = config.metrics.otlpEndpoint ?? 'http://localhost:4318/v1/metrics';
      readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url }), exportIntervalMillis, exportTimeoutMillis }));
      logger.info({ url }, 'metrics: exporting OTLP/HTTP');
    }
  }
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'xyra-scheduler', 'service.version': serviceVersion }),
    readers,
  });
  metrics.setGlobalMeterProvider(provider);
  instruments = undefined; // re-create on the new provider
  if (readers.length > 0) logger.info({ exporters: config.metrics.exporters }, 'metrics: exporters started');
  return {
    shutdown: async () => {
      await provider.shutdown().catch((e: unknown) => logger.warn({ err: String(e) }, 'metrics: shutdown failed'));
      metrics.disable();
      instruments = undefined;
    },
    forceFlush: () => provider.forceFlush(),
  };
}
