// What every `xyra` sub-command implements. Commands live with their subsystem (pipeline/commands.ts,
// ops/commands.ts); cli.ts only dispatches.
import pg from 'pg';
import type { Config } from './config.js';
import type { Logger } from './logger.js';

export interface CliContext {
  config: Config;
  /** Diagnostics go to stderr, so stdout stays clean for `--json` output. */
  logger: Logger;
  /** Write one line of command output to stdout. */
  out(line: string): void;
  /** True when stdout is a terminal (tables, progress bars); false when piped (JSON-friendly, plain lines). */
  isTTY: boolean;
}

export interface CliCommand {
  summary: string;
  usage: string;
  /** Returns the process exit code. Throw UsageError for bad arguments (exit 2). */
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** An optional `--name N` option: a positive whole number, or `fallback` when absent. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError(`--${name} must be a positive whole number, got "${value}"`);
  return Number(value);
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Run `fn` with a short-lived connection (a CLI command's whole life), closed whatever happens. */
export async function withDb<T>(url: string, fn: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ connectionString: url, application_name: 'xyra-cli' });
  // A connection dropped while idle (a database restart) must not crash the command: its next query fails instead.
  db.on('error', () => undefined);
  await db.connect();
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}
