// What every `xyra` sub-command implements. Commands are listed with their subsystem (pipeline/commands.ts,
// ops/commands.ts), their code is loaded on demand; cli.ts only dispatches.
import type pg from 'pg';
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

/** A command's code: returns the process exit code. Throw UsageError for bad arguments (exit 2). */
export type CommandRun = (args: string[], ctx: CliContext) => Promise<number>;

/**
 * A command as `xyra` lists it. Its code is loaded only when it runs: each command's module graph (the DBOS SDK,
 * knex, OTel, …) costs memory, and `xyra ingest` streaming a large file must not carry every other command's.
 */
export interface CliCommand {
  summary: string;
  usage: string;
  load(): Promise<CommandRun>;
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
  const { default: pgModule } = await import('pg'); // not loaded by `xyra --help`
  const db = new pgModule.Client({ connectionString: url, application_name: 'xyra-cli' });
  // A connection dropped while idle (a database restart) must not crash the command: its next query fails instead.
  db.on('error', () => undefined);
  await db.connect();
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}
