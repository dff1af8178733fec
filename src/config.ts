// One zod schema over the environment. Every variable the service reads is parsed here, once,
// so a bad value fails fast with a single line naming the variable (exit code 2, nothing started).
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { validateCron } from './evaluation/cronExpression.js';
import { ConfigError } from './errors.js';

const CATCH_UP_POLICIES = ['latest', 'all', 'none'] as const;
export type CatchUpPolicy = (typeof CATCH_UP_POLICIES)[number];
const METRIC_EXPORTERS = ['console', 'otlp', 'prometheus'] as const;
export type MetricExporterName = (typeof METRIC_EXPORTERS)[number];
const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];
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

const DURATION_UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `500ms`, `90s`, `15m`, `24h`, `30d` → milliseconds. Throws with a one-line reason. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`expected a duration like 30s, 15m, 24h or 7d, got "${text}"`);
  return Number(m[1]) * DURATION_UNITS[m[2] as keyof typeof DURATION_UNITS];
}

function duration(defaultValue: string, minMs: number) {
  return optionalString.transform((v, ctx) => {
    try {
      const ms = parseDuration(v ?? defaultValue);
      if (ms < minMs) {
        ctx.addIssue({ code: 'custom', message: `must be at least ${minMs} ms, got "${v}"` });
        return z.NEVER;
      }
      return ms;
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  });
}

/** An IANA time zone name that this Node's Intl knows (`UTC`, `Europe/Berlin`, `America/New_York`). */
const timeZone = optionalString.transform((v, ctx) => {
  const zone = v ?? 'UTC';
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: `unknown IANA time zone "${zone}" (e.g. UTC, Europe/Berlin, America/New_York)`,
    });
    return z.NEVER;
  }
});

/** Shorter bearer tokens can be guessed; this is also the length from which the log scrubber masks a secret. */
export const MIN_TOKEN_LENGTH = 16;

const secretToken = optionalString.refine(
  (v) => v === undefined || v.length >= MIN_TOKEN_LENGTH,
  `must be at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 24)`,
);

/** HOST: an IP literal or a host name to listen on. */
const host = optionalString.transform((v, ctx) => {
  const address = v ?? '127.0.0.1';
  // An IP literal or a host name: no scheme, port, path or spaces.
  if (!/^[A-Za-z0-9.:-]+$/.test(address)) {
    ctx.addIssue({
      code: 'custom',
      message: `must be an address to listen on (e.g. 127.0.0.1 or 0.0.0.0), got "${address}"`,
    });
    return z.NEVER;
  }
  return address;
});

/** ALLOWED_HOSTS: Host header names, lower case, without port or brackets. */
const allowedHosts = optionalString.transform((v, ctx) => {
  if (v === undefined) return undefined;
  const names = v
    .split(',')
    .map((s) =>
      s
        .trim()
        .toLowerCase()
        .replace(/^\[(.*)\]$/, '$1'),
    )
    .filter((s) => s !== '');
  const bad = names.find((n) => !/^[a-z0-9.:-]+$/.test(n));
  if (bad !== undefined || names.length === 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be a comma list of host names without port (e.g. scheduler.example.com,localhost), got "${v}"`,
    });
    return z.NEVER;
  }
  return names;
});

const otlpProtocol = optionalString.pipe(
  z.enum(OTLP_PROTOCOLS, { message: `must be one of ${OTLP_PROTOCOLS.join(', ')}` }).optional(),
);

const cron = optionalString.transform((v, ctx) => {
  const value = v ?? '*/2 * * * *';
  try {
    validateCron(value);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `invalid cron "${value}": ${(e as Error).message}` });
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
  BATCH_QUEUE_POLL_MS: int(2_000, 10, 60_000),
  BATCH_TIMEZONE: timeZone,
  BATCH_CATCH_UP_WINDOW: duration('24h', 0),
  BATCH_PAUSE_AFTER_FAILURES: int(0, 0, 1_000_000),
  FAILOVER_AFTER: duration('30s', 1_000),
  FENCE_EXIT: optionalString
    .pipe(z.enum(['true', 'false'], { message: 'must be true or false' }).optional())
    .transform((v) => v === 'true'),
  HISTORY_RETENTION: duration('30d', 1_000),
  DASHBOARD_TOKEN: secretToken,
  ADMIN_TOKEN: secretToken,
  HOST: host,
  ALLOWED_HOSTS: allowedHosts,
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
  PIPELINE_CHUNK_SIZE: int(2_000, 1, 100_000),
  PIPELINE_CONCURRENCY: int(8, 1, 1_000),
  PIPELINE_POLL_MS: int(800, 10, 60_000),
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
  OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol,
  OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: otlpProtocol,
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
    /** IANA zone the cron is read in. */
    timezone: string;
    /** After downtime, only missed slots this recent (ms) are created one by one. */
    catchUpWindowMs: number;
    /** The same as written (`24h`): a schedule's `catch_up_window` default. */
    catchUpWindow: string;
    /** Pause the schedule after this many consecutive `failed` runs; 0 = never. */
    pauseAfterFailures: number;
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
  /** A replica whose executor claim has been free this long (ms) is dead: its unfinished workflows are taken over. */
  failoverAfterMs: number;
  /** FENCE_EXIT: exit (code 1) when fenced, for crash-only operation under a supervisor; off by default. */
  fenceExit: boolean;
  /** Finished workflows older than this (ms) are deleted from the DBOS system tables. */
  historyRetentionMs: number;
  /** When set, `/` and `/api/*` require `Authorization: Bearer <token>`. */
  dashboardToken: string | undefined;
  /** Bearer token for HTTP mutations of schedules; unset → refused (403). */
  adminToken: string | undefined;
  /** The address the HTTP server listens on (default 127.0.0.1). */
  host: string;
  /** Host header names `/` and `/api/*` answer to; undefined: see httpServer.ts. */
  allowedHosts: string[] | undefined;
  port: number;
  logLevel: (typeof LOG_LEVELS)[number];
  shutdownTimeoutMs: number;
  dataDir: string;
  metrics: {
    exporters: MetricExporterName[];
    otlpEndpoint: string | undefined;
    /** OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else the spec's default. */
    otlpProtocol: OtlpProtocol;
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
    batch: {
      cron: e.BATCH_CRON,
      sizeLimit: e.BATCH_SIZE_LIMIT,
      catchUp: e.BATCH_CATCH_UP,
      queuePollMs: e.BATCH_QUEUE_POLL_MS,
      timezone: e.BATCH_TIMEZONE,
      catchUpWindowMs: e.BATCH_CATCH_UP_WINDOW,
      catchUpWindow: env.BATCH_CATCH_UP_WINDOW?.trim() || '24h',
      pauseAfterFailures: e.BATCH_PAUSE_AFTER_FAILURES,
    },
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
    failoverAfterMs: e.FAILOVER_AFTER,
    fenceExit: e.FENCE_EXIT,
    historyRetentionMs: e.HISTORY_RETENTION,
    dashboardToken: e.DASHBOARD_TOKEN,
    adminToken: e.ADMIN_TOKEN,
    host: e.HOST,
    allowedHosts: e.ALLOWED_HOSTS,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    dataDir: e.XYRA_DATA_DIR,
    metrics: {
      exporters: e.OTEL_METRICS_EXPORTER,
      otlpEndpoint:
        e.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ??
        (e.OTEL_EXPORTER_OTLP_ENDPOINT ? `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/$/, '')}/v1/metrics` : undefined),
      otlpProtocol: e.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL ?? e.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf',
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
