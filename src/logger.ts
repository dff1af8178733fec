// pino logger with redaction, and the adapter through which DBOS logs into it.
import { pino, type Logger } from 'pino';
import type { DLogger } from '@dbos-inc/dbos-sdk';

export type { Logger };

const REDACT_PATHS = [
  'token',
  'apiToken',
  'xyraApiToken',
  'password',
  'authorization',
  'headers.authorization',
  '*.token',
  '*.password',
  '*.authorization',
  '*.headers.authorization',
];

/** Secrets that must never be printed, registered once config is loaded (token, URL passwords). */
const secrets = new Set<string>();

/**
 * Shorter secrets are never scrubbed by substring: a 4-letter password such as `xyra` occurs in ordinary text
 * (and data), and replacing it everywhere mangles logs without protecting anything. They are still masked
 * where their place is known: URL passwords (see redact) and the logger's redacted fields.
 */
export const MIN_SCRUBBED_SECRET_LENGTH = 8;

export function registerSecret(value: string | undefined): void {
  if (value && value.length >= MIN_SCRUBBED_SECRET_LENGTH) secrets.add(value);
}

/** Passwords embedded in connection URLs are secrets too (and tokens passed in their query strings). */
export function registerUrlSecrets(url: string | undefined): void {
  if (!url) return;
  try {
    const u = new URL(url);
    for (const secret of [
      u.password,
      ...[...u.searchParams].filter(([k]) => /token|key|secret|password|auth/i.test(k)).map(([, v]) => v),
    ]) {
      if (!secret) continue;
      registerSecret(secret);
      try {
        registerSecret(decodeURIComponent(secret));
      } catch {
        // not percent-encoded: registered as it is
      }
    }
  } catch {
    // not a URL: nothing to register
  }
}

/** Replace every registered secret in a string, and mask URL passwords we were not told about. */
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('[REDACTED]');
  return out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)([^@\s/]+)@/gi, '$1[REDACTED]@');
}

/** Deeply redact a JSON-able value (events, workflow outputs). Never applied to dataset records: they are data. */
export function redactValue<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactValue(v)) as T;
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactValue(v);
    return out as T;
  }
  return value;
}

/** An error's stack (or message), redacted: what goes to the log beside an error id, never to a client. */
export function errorDetail(e: unknown): string {
  if (e instanceof Error) return redact(e.stack ?? e.message);
  try {
    return redact(typeof e === 'string' ? e : (JSON.stringify(e) ?? String(e)));
  } catch {
    return redact(String(e));
  }
}

/**
 * A copy of a log argument with every string redacted, deeply. Errors become `{type, message, stack}` (what
 * pino's own serializer prints, redacted); depth and cycles are bounded so logging never throws or hangs.
 */
export function redactForLog(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return redact(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[Circular]';
  if (depth > 8) return '[Too deep]';
  seen.add(value);
  if (value instanceof Error) {
    const out: Record<string, unknown> = { type: value.name, message: redact(value.message) };
    if (value.stack !== undefined) out.stack = redact(value.stack);
    for (const [k, v] of Object.entries(value)) out[k] = redactForLog(v, depth + 1, seen);
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => redactForLog(v, depth + 1, seen));
  if (value instanceof Date || Buffer.isBuffer(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactForLog(v, depth + 1, seen);
  return out;
}

/** `destination`: a file descriptor (1 = stdout, 2 = stderr; written synchronously so nothing is lost on
 * exit) or any stream (tests capture logs this way). */
export function createLogger(level: string, destination: number | NodeJS.WritableStream = 1): Logger {
  return pino(
    {
      level,
      base: { service: 'xyra-scheduler' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        // Last line of defence: scrub registered secrets and URL passwords from every message string and from
        // every string inside a logged object (`{err: e.message}`, `{url}`), errors included.
        logMethod(args, method) {
          const scrubbed = args.map((a) => redactForLog(a)) as typeof args;
          method.apply(this, scrubbed);
        },
      },
    },
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination,
  );
}

function describe(entry: unknown): string {
  if (entry instanceof Error) return redact(entry.message);
  return redact(typeof entry === 'string' ? entry : JSON.stringify(entry));
}

/**
 * DBOS logs through our pino instance, so all output is one JSON stream with one redaction policy.
 * `quiet(message)` true demotes a warning or error to debug: during a database outage DBOS logs a line per
 * retry and per queue poll, and the outage itself is said once (runtime/databaseOutage.ts).
 */
export function dbosLogger(logger: Logger, quiet: (message: string) => boolean = () => false): DLogger {
  const child = logger.child({ component: 'dbos' });
  return {
    info: (entry) => child.info(describe(entry)),
    debug: (entry) => child.debug(describe(entry)),
    warn: (entry) => {
      const msg = describe(entry);
      if (quiet(msg)) child.debug(msg);
      else child.warn(msg);
    },
    error: (entry) => {
      const msg = describe(entry);
      const err = entry instanceof Error ? { err: { message: redact(entry.message), name: entry.name } } : {};
      if (quiet(msg)) child.debug(err, msg);
      else child.error(err, msg);
    },
  };
}
