// One zod schema over the environment. Every variable the service reads is parsed here, once,
// so a bad value fails fast with a single line naming the variable (exit code 2, nothing started).
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { validateCrontab } from '@dbos-inc/dbos-sdk/internal/scheduler/crontab';
import { ConfigError } from './errors.js';

const CATCH_UP_POLICIES = ['latest', 'all', 'none'] as const;
export type CatchUpPolicy = (typeof CATCH_UP_POLICIES)[number];
const METRIC_EXPORTERS = ['console', 'otlp'] as const;
export type MetricExporterName = (typeof METRIC_EXPORTERS)[number];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Empty strings count as unset: `.envrc` files and compose files often export `VAR=`. */
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const postgresUrl = optionalString.refine(
  (v) => v === undefined || /^postgres(ql)?:\/\//.test(v),
  'must be a postgres:// or postgresql:// URL',
);

const httpUrl = optionalString.refine((v) => {
  if (v === undefined) return true;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL');

function int(defaultValue: number, min: number, max = Number.MAX_SAFE_INTEGER) {
  return optionalString
    .transform((v, ctx) => {
      if (v === undefined) return defaultValue;
      if (!/^-?\d+$/.test(v)) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number, got "${v}"` });
        return z.NEVER;
      }
      return Number(v);
    })
    .pipe(z.number().int().min(min).max(max));
}

function list<T extends string>(allowed: readonly T[]) {
  return optionalString.transform((v, ctx) => {
    const items = (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '' && s !== 'none');
    for (const item of items) {
      if (!(allowed as readonly string[]).includes(item)) {
        ctx.addIssue({ code: 'custom', message: `unknown value "${item}" (allowed: ${allowed.join(', ')}, none)` });
        return z.NEVER;
      }
    }
    return [...new Set(items)] as T[];
  });
}

const cron = optionalString.transform((v, ctx) => {
  const value = v ?? '*/2 * * * *';
  const fields = value.split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    ctx.addIssue({ code: 'custom', message: `must have 5 or 6 fields, got ${fields} in "${value}"` });
    return z.NEVER;
  }
  try {
    validateCrontab(value);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `invalid crontab "${value}": ${(e as Error).message}` });
    return z.NEVER;
  }
  return value;
});

const envSchema = z.object({
  DATABASE_URL: postgresUrl,
  DBOS_SYSTEM_DATABASE_URL: postgresUrl,
  XYRA_API_URL: httpUrl,
  XYRA_API_TOKEN: optionalString,
  BATCH_CRON: cron,
  BATCH_SIZE_LIMIT: int(30, 1, 100_000),
  BATCH_CATCH_UP: optionalString.pipe(z.enum(CATCH_UP_POLICIES).optional()).transform((v) => v ?? 'latest'),
  BATCH_QUEUE_POLL_MS: int(250, 10, 60_000),
  XYRA_TIMEOUT_MS: int(10_000, 1, 600_000),
  XYRA_CONNECT_TIMEOUT_MS: int(5_000, 1, 600_000),
  XYRA_MAX_ATTEMPTS: int(5, 1, 100),
  XYRA_BACKOFF_BASE_MS: int(1_000, 0, 3_600_000),
  XYRA_BACKOFF_MAX_MS: int(60_000, 0, 3_600_000),
  PIPELINE_FAIL_IDS: optionalString.transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  ),
  PIPELINE_CHUNK_SIZE: int(1_000, 1, 100_000),
  PIPELINE_CONCURRENCY: int(4, 1, 1_000),
  PIPELINE_POLL_MS: int(50, 10, 60_000),
  PIPELINE_STEP_MAX_ATTEMPTS: int(5, 1, 100),
  PIPELINE_STEP_INTERVAL_MS: int(200, 0, 3_600_000),
  PIPELINE_STEP_BACKOFF_RATE: optionalString
    .transform((v) => (v === undefined ? 2 : Number(v)))
    .pipe(z.number({ message: 'must be a number' }).min(1).max(10)),
  EXECUTOR_ID: optionalString.transform((v) => v ?? os.hostname()),
  PORT: int(3000, 0, 65_535),
  LOG_LEVEL: optionalString.pipe(z.enum(LOG_LEVELS).optional()).transform((v) => v ?? 'info'),
  SHUTDOWN_TIMEOUT_MS: int(20_000, 0, 3_600_000),
  XYRA_DATA_DIR: optionalString.transform((v) => path.resolve(v ?? '.data')),
  OTEL_METRICS_EXPORTER: list(METRIC_EXPORTERS),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl,
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: httpUrl,
  OTEL_METRIC_EXPORT_INTERVAL: int(60_000, 100, 86_400_000),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  /** Undefined: start (or reuse) the embedded Postgres under `dataDir`. */
  databaseUrl: string | undefined;
  systemDatabaseUrl: string | undefined;
  /** Undefined: start the built-in Xyra simulator in-process. */
  xyraApiUrl: string | undefined;
  xyraApiToken: string | undefined;
  batch: {
    cron: string;
    sizeLimit: number;
    catchUp: CatchUpPolicy;
    queuePollMs: number;
  };
  xyra: {
    timeoutMs: number;
    connectTimeoutMs: number;
    maxAttempts: number;
    backoffBaseMs: number;
    backoffMaxMs: number;
  };
  pipeline: {
    failIds: string[];
    chunkSize: number;
    concurrency: number;
    pollMs: number;
    stepMaxAttempts: number;
    stepIntervalMs: number;
    stepBackoffRate: number;
  };
  executorId: string;
  port: number;
  logLevel: (typeof LOG_LEVELS)[number];
  shutdownTimeoutMs: number;
  dataDir: string;
  metrics: {
    exporters: MetricExporterName[];
    otlpEndpoint: string | undefined;
    exportIntervalMs: number;
  };
}

/** Parse the environment; throws ConfigError whose message is one line naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? 'environment');
    throw new ConfigError(variable, issue?.message ?? 'invalid value');
  }
  const e = parsed.data;
  return {
    databaseUrl: e.DATABASE_URL,
    systemDatabaseUrl: e.DBOS_SYSTEM_DATABASE_URL,
    xyraApiUrl: e.XYRA_API_URL,
    xyraApiToken: e.XYRA_API_TOKEN,
    batch: { cron: e.BATCH_CRON, sizeLimit: e.BATCH_SIZE_LIMIT, catchUp: e.BATCH_CATCH_UP, queuePollMs: e.BATCH_QUEUE_POLL_MS },
    xyra: {
      timeoutMs: e.XYRA_TIMEOUT_MS,
      connectTimeoutMs: e.XYRA_CONNECT_TIMEOUT_MS,
      maxAttempts: e.XYRA_MAX_ATTEMPTS,
      backoffBaseMs: e.XYRA_BACKOFF_BASE_MS,
      backoffMaxMs: e.XYRA_BACKOFF_MAX_MS,
    },
    pipeline: {
      failIds: e.PIPELINE_FAIL_IDS,
      chunkSize: e.PIPELINE_CHUNK_SIZE,
      concurrency: e.PIPELINE_CONCURRENCY,
      pollMs: e.PIPELINE_POLL_MS,
      stepMaxAttempts: e.PIPELINE_STEP_MAX_ATTEMPTS,
      stepIntervalMs: e.PIPELINE_STEP_INTERVAL_MS,
      stepBackoffRate: e.PIPELINE_STEP_BACKOFF_RATE,
    },
    executorId: e.EXECUTOR_ID,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    dataDir: e.XYRA_DATA_DIR,
    metrics: {
      exporters: e.OTEL_METRICS_EXPORTER,
      otlpEndpoint:
        e.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ??
        (e.OTEL_EXPORTER_OTLP_ENDPOINT ? `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/$/, '')}/v1/metrics` : undefined),
      exportIntervalMs: e.OTEL_METRIC_EXPORT_INTERVAL,
    },
  };
}

/** The system database defaults to `<app db>_dbos_sys` on the same server. */
export function defaultSystemDatabaseUrl(appDatabaseUrl: string): string {
  const u = new URL(appDatabaseUrl);
  const appDb = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  u.pathname = `/${encodeURIComponent(`${appDb}_dbos_sys`)}`;
  return u.toString();
}
