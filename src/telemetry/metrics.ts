// OpenTelemetry metrics: one MeterProvider whose readers are chosen by OTEL_METRICS_EXPORTER (exporters.ts),
// and the service's instruments. Instruments are created on the global API meter, so code that records works the
// same whether or not an exporter is configured (no exporter: records go nowhere).
import { metrics, type Counter, type Gauge, type Histogram } from '@opentelemetry/api';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { MetricsRequestHandler } from './exporters.js';

export type { MetricsRequestHandler } from './exporters.js';

const METER_NAME = 'xyra-scheduler';

export type DbOperation = 'insert_task' | 'insert_error';

/**
 * Why a slot's run did not call the API: our own gate's reasons (BatchRunOutput.skipped_reason; `superseded`: a
 * slot of a spec version edited since, or of a deleted schedule) and `api` for the API's own "already in
 * progress" answer.
 */
export const SKIP_REASONS = ['missed', 'in_progress', 'paused', 'not_a_slot', 'superseded', 'api'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** Final statuses that mean the API took the batch (ran it, or accepted it to run remotely). */
const COMPLETED_STATUSES = new Set(['completed', 'triggered']);

// Every batch metric carries `schedule` (the schedule's name: bounded by the number of schedules), so alerts
// and dashboards can tell schedules apart. Times are exported as Unix seconds, the Prometheus convention
// (`time() - x` in an alert).
interface Instruments {
  dbOperations: Counter;
  batchRuns: Counter;
  skippedSlots: Counter;
  scheduleLag: Histogram;
  consecutiveFailures: Gauge;
  lastOutcomeTime: Gauge;
  lastCompletedTime: Gauge;
  lastMissedTime: Gauge;
  nextSlotTime: Gauge;
  slotInterval: Gauge;
  schedulePaused: Gauge;
  dbOutages: Counter;
  dbOutageDuration: Histogram;
}

let instruments: Instruments | undefined;
/** Per schedule, the newest completed slot recorded, so a late backfilled run never moves the gauge back. */
const lastCompleted = new Map<string, number>();
/** Per schedule, the newest slot whose outcome set the failure gauge (same reason). */
const lastOutcome = new Map<string, number>();
/** Per schedule, when a slot was last recorded as missed. */
const lastMissed = new Map<string, number>();

function get(): Instruments {
  if (!instruments) {
    const meter = metrics.getMeter(METER_NAME);
    instruments = {
      dbOperations: meter.createCounter('xyra.db.operations', {
        description: 'Rows actually inserted into the app tables (no-op conflicts and retries not counted)',
      }),
      batchRuns: meter.createCounter('xyra.batch.runs', {
        description: 'Evaluation batch runs by schedule and final status',
      }),
      skippedSlots: meter.createCounter('xyra.batch.skipped_slots', {
        description: `Batch runs that did not call the API, by schedule and reason (${SKIP_REASONS.join(', ')})`,
      }),
      scheduleLag: meter.createHistogram('xyra.batch.schedule_lag', {
        description: "Time from a slot's scheduled time to the batch run's actual start, by schedule",
        unit: 'ms',
      }),
      consecutiveFailures: meter.createGauge('xyra.batch.consecutive_failures', {
        description:
          'Consecutive failed batch runs of the schedule, as of the latest run this process finished (see xyra.batch.last_outcome_time)',
      }),
      lastOutcomeTime: meter.createGauge('xyra.batch.last_outcome_time', {
        description:
          'Slot time of the run that last set xyra.batch.consecutive_failures in this process (Unix seconds): the newest value across replicas is the current one',
        unit: 's',
      }),
      lastCompletedTime: meter.createGauge('xyra.batch.last_completed_time', {
        description: 'Slot time of the newest run of the schedule that ended completed or triggered (Unix seconds)',
        unit: 's',
      }),
      lastMissedTime: meter.createGauge('xyra.batch.last_missed_time', {
        description:
          'When a slot of the schedule was last recorded as missed (Unix seconds; 0: never): a run skipped by the catch-up policy, or slots beyond the catch-up window summed up at start-up',
        unit: 's',
      }),
      nextSlotTime: meter.createGauge('xyra.batch.next_slot_time', {
        description:
          'The next slot this process will fire for the schedule (Unix seconds); in the past means firing is stuck',
        unit: 's',
      }),
      slotInterval: meter.createGauge('xyra.batch.slot_interval', {
        description: "Time from the next slot to the one after it (seconds): the schedule's current interval",
        unit: 's',
      }),
      schedulePaused: meter.createGauge('xyra.batch.schedule_paused', {
        description: '1 while the schedule is paused, 0 while active (as last read by this process)',
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

const seconds = (d: Date) => d.getTime() / 1000;

export function recordDbOperations(operation: DbOperation, rows: number): void {
  if (rows > 0) get().dbOperations.add(rows, { operation });
}

/**
 * Exports the schedule's skip counters at 0, so the first skip after start-up is an increase Prometheus sees
 * (a series that appears at 1 has no increase).
 */
export function initScheduleMetrics(schedule: string): void {
  for (const reason of SKIP_REASONS) get().skippedSlots.add(0, { schedule, reason });
  if (!lastMissed.has(schedule)) recordLastMissed(schedule, new Date(0));
}

/**
 * A batch run's final status. A `skipped` run also counts under its reason (`skippedReason`, or `api` when the
 * API itself answered that a batch is in progress); a completed or triggered one moves the last-completed gauge.
 */
export function recordBatchRun(schedule: string, status: string, slot: Date, skippedReason?: SkipReason): void {
  const i = get();
  i.batchRuns.add(1, { schedule, status });
  if (status === 'skipped') i.skippedSlots.add(1, { schedule, reason: skippedReason ?? 'api' });
  if (status === 'skipped' && skippedReason === 'missed') recordLastMissed(schedule, new Date());
  if (COMPLETED_STATUSES.has(status)) recordLastCompleted(schedule, slot);
}

/**
 * Slots missed while no replica ran and older than the catch-up window: summed up at start-up, never run.
 * They count as `missed` skips.
 */
export function recordMissedSlots(schedule: string, count: number, at: Date): void {
  if (count > 0) get().skippedSlots.add(count, { schedule, reason: 'missed' });
  recordLastMissed(schedule, at);
}

/**
 * When a slot was last recorded as missed. A time, not only the counter: slots missed in a downtime are
 * counted right after start-up, often before the first scrape, where a new counter shows no increase.
 */
export function recordLastMissed(schedule: string, at: Date): void {
  const ms = at.getTime();
  if (!Number.isFinite(ms) || ms <= (lastMissed.get(schedule) ?? -Infinity)) return;
  lastMissed.set(schedule, ms);
  get().lastMissedTime.record(seconds(at), { schedule });
}

/** The newest completed slot of the schedule (also seeded from the history at start-up). */
export function recordLastCompleted(schedule: string, slot: Date): void {
  const at = slot.getTime();
  if (!Number.isFinite(at) || at <= (lastCompleted.get(schedule) ?? -Infinity)) return;
  lastCompleted.set(schedule, at);
  get().lastCompletedTime.record(seconds(slot), { schedule });
}

export function recordScheduleLag(schedule: string, ms: number): void {
  get().scheduleLag.record(Math.max(0, ms), { schedule });
}

/**
 * The failure streak after the run of `slot` finished. A count `fromHistory` (read from the runs on record under
 * the policy's lock) is the newest truth whatever slot brought it; a count assumed from the run alone (0 after a
 * completed run) does not overwrite the count of a newer slot's outcome when an older run finishes late.
 */
export function recordConsecutiveFailures(
  schedule: string,
  count: number,
  slot: Date,
  options: { fromHistory?: boolean } = {},
): void {
  const at = slot.getTime();
  if (!Number.isFinite(at)) return;
  const newest = at >= (lastOutcome.get(schedule) ?? -Infinity);
  if (!newest && !options.fromHistory) return;
  get().consecutiveFailures.record(count, { schedule });
  if (!newest) return;
  lastOutcome.set(schedule, at);
  get().lastOutcomeTime.record(seconds(slot), { schedule });
}

/** The slot the engine's timer waits for next for the schedule, and the interval after it (null: none after it). */
export function recordNextSlot(schedule: string, next: Date, following: Date | null): void {
  get().nextSlotTime.record(seconds(next), { schedule });
  get().slotInterval.record(following ? (following.getTime() - next.getTime()) / 1000 : Number.POSITIVE_INFINITY, {
    schedule,
  });
}

/**
 * The schedule has no next slot (paused, a cron that never fires again, deleted): next slot +Inf, so the
 * overdue alert (`time() - next > 60`) cannot fire on a value left behind. A deleted or ended schedule's
 * interval becomes +Inf too, so "no completed run for 3 intervals" goes quiet; a paused one keeps its
 * interval (the paused gauge silences that alert). A gauge series cannot be withdrawn, hence the values.
 */
export function forgetScheduleTimer(schedule: string, options: { keepInterval?: boolean } = {}): void {
  get().nextSlotTime.record(Number.POSITIVE_INFINITY, { schedule });
  if (!options.keepInterval) get().slotInterval.record(Number.POSITIVE_INFINITY, { schedule });
}

/** Whether each schedule's pause state has been recorded since start-up. */
const pauseKnown = new Set<string>();

/** `unlessKnown`: a start-up read, which must not overwrite what a slot read since. */
export function recordSchedulePaused(schedule: string, paused: boolean, options: { unlessKnown?: boolean } = {}): void {
  if (options.unlessKnown && pauseKnown.has(schedule)) return;
  pauseKnown.add(schedule);
  get().schedulePaused.record(paused ? 1 : 0, { schedule });
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

function resetRecorded(): void {
  instruments = undefined; // re-create on the current provider
  lastCompleted.clear();
  lastOutcome.clear();
  lastMissed.clear();
  pauseKnown.clear();
}

export async function startTelemetry(config: Config, logger: Logger, serviceVersion: string): Promise<Telemetry> {
  if (config.metrics.exporters.length === 0) {
    // No exporter (the default): the SDK would record into nothing, so it is not even loaded (~0.08 s of every
    // start-up). The API's own no-op meter takes the records, as a provider without readers did.
    resetRecorded();
    return { shutdown: async () => resetRecorded(), forceFlush: async () => undefined };
  }
  const [{ createMetricReaders }, { MeterProvider }, { resourceFromAttributes }] = await Promise.all([
    import('./exporters.js'),
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/resources'),
  ]);
  const { readers, prometheusHandler } = await createMetricReaders(config.metrics, logger);
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'xyra-scheduler', 'service.version': serviceVersion }),
    readers,
  });
  metrics.setGlobalMeterProvider(provider);
  resetRecorded();
  logger.info({ exporters: config.metrics.exporters }, 'metrics: exporters started');
  return {
    shutdown: async () => {
      await provider.shutdown().catch((e: unknown) => logger.warn({ err: String(e) }, 'metrics: shutdown failed'));
      metrics.disable();
      resetRecorded();
    },
    forceFlush: () => provider.forceFlush(),
    metricsHandler: prometheusHandler,
  };
}
