// OpenTelemetry metrics: one MeterProvider whose readers are chosen by OTEL_METRICS_EXPORTER (exporters.ts),
// and the service's instruments. Instruments are created on the global API meter, so code that records works the
// same whether or not an exporter is configured (no exporter: records go nowhere).
import { metrics, type Counter, type Gauge, type Histogram } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { createMetricReaders, type MetricsRequestHandler } from './exporters.js';

export type { MetricsRequestHandler } from './exporters.js';

const METER_NAME = 'xyra-scheduler';

export type DbOperation = 'insert_task' | 'insert_error';

interface Instruments {
  dbOperations: Counter;
  batchRuns: Counter;
  scheduleLag: Histogram;
  consecutiveFailures: Gauge;
  dbOutages: Counter;
  dbOutageDuration: Histogram;
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
      dbOutages: meter.createCounter('xyra.db.outages', {
        description: 'Times this replica lost its database (its executor claim unconfirmed: fenced until it is back)',
      }),
      dbOutageDuration: meter.createHistogram('xyra.db.outage_duration', {
        description: 'How long each database outage lasted, from the first failed to the next confirmed claim',
        unit: 'ms',
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

/** A database outage began (counted at its start, so a long one shows while it lasts). */
export function recordDbOutageStarted(): void {
  get().dbOutages.add(1);
}

export function recordDbOutageEnded(ms: number): void {
  get().dbOutageDuration.record(Math.max(0, ms));
}

export interface Telemetry {
  /** Export what is pending and stop the readers. */
  shutdown(): Promise<void>;
  forceFlush(): Promise<void>;
  /** The `/metrics` handler when OTEL_METRICS_EXPORTER includes `prometheus`. */
  metricsHandler?: MetricsRequestHandler;
}

export function startTelemetry(config: Config, logger: Logger, serviceVersion: string): Telemetry {
  const { readers, prometheusHandler } = createMetricReaders(config.metrics, logger);
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
    metricsHandler: prometheusHandler,
  };
}
