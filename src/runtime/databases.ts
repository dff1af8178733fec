// Where the service's two databases live: the app database (our tables) and the DBOS system database.
// With no DATABASE_URL both live on the embedded Postgres of this directory.
import pg from 'pg';
import { defaultSystemDatabaseUrl, type Config } from '../config.js';
import { createLogger, registerUrlSecrets, type Logger } from '../logger.js';
import { joinEmbeddedPostgres, startEmbeddedPostgres, type EmbeddedPostgres } from './embeddedPostgres.js';

/** Anything that runs a parameterised query: a pg.Pool, pg.Client or pool client. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<pg.QueryResult>;
}

/** The app database's name on the embedded server. */
const EMBEDDED_APP_DB = 'xyra';

export interface DatabaseUrls {
  appDatabaseUrl: string;
  systemDatabaseUrl: string;
  /** Set when this process started or joined the embedded server. */
  embedded?: EmbeddedPostgres;
}

/** The same server URL pointing at another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/**
 * Sets the system database's idle-in-transaction timeout in the connection string itself (unless the URL
 * already sets `options`). DBOS otherwise sends it as a SET on every new pool connection, racing its first
 * query (pg prints a deprecation warning for that); with the option in the URL DBOS leaves it to libpq.
 */
export function withSessionTimeout(url: string, idleInTransactionMs = 60_000): string {
  const u = new URL(url);
  if (u.searchParams.has('options')) return url;
  u.searchParams.set('options', `-c idle_in_transaction_session_timeout=${idleInTransactionMs}`);
  return u.toString();
}

export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

/**
 * For the service: start (or join) the embedded server when no DATABASE_URL is given. The caller releases
 * `embedded` when it stops (the server stops with its last user). `signal`: start-up was interrupted.
 */
export async function resolveDatabases(
  config: Config,
  logger: Logger,
  signal?: AbortSignal,
  /** The embedded server's start, already under way (main.ts starts it before loading the service's modules). */
  embeddedStart?: Promise<EmbeddedPostgres>,
): Promise<DatabaseUrls> {
  let embedded: EmbeddedPostgres | undefined;
  let appDatabaseUrl = config.databaseUrl;
  if (!appDatabaseUrl) {
    embedded = await (embeddedStart ?? startEmbeddedPostgres(config.dataDir, logger, signal));
    appDatabaseUrl = withDatabase(embedded.url, EMBEDDED_APP_DB);
  }
  registerUrlSecrets(appDatabaseUrl);
  registerUrlSecrets(config.systemDatabaseUrl);
  const systemDatabaseUrl = withSessionTimeout(config.systemDatabaseUrl ?? defaultSystemDatabaseUrl(appDatabaseUrl));
  try {
    await ensureDatabase(appDatabaseUrl);
  } catch (e) {
    await embedded?.release();
    throw e;
  }
  return { appDatabaseUrl, systemDatabaseUrl, embedded };
}

/** The embedded servers this CLI process joined, released by releaseClientDatabases() before it exits. */
const clientLeases: EmbeddedPostgres[] = [];

/**
 * For CLI commands: reach the same databases the service of this directory uses, never start a server.
 * With the embedded default the CLI counts as a user of the server until releaseClientDatabases().
 */
export async function resolveDatabasesForClient(config: Config, logger?: Logger): Promise<DatabaseUrls> {
  let appDatabaseUrl = config.databaseUrl;
  if (!appDatabaseUrl) {
    const joined = await joinEmbeddedPostgres(config.dataDir, logger ?? createLogger('silent'));
    if (!joined) {
      throw new Error(
        `DATABASE_URL is not set and no embedded Postgres runs for ${config.dataDir}: start the service first (npm start)`,
      );
    }
    clientLeases.push(joined);
    appDatabaseUrl = withDatabase(joined.url, EMBEDDED_APP_DB);
  }
  registerUrlSecrets(appDatabaseUrl);
  registerUrlSecrets(config.systemDatabaseUrl);
  return {
    appDatabaseUrl,
    systemDatabaseUrl: withSessionTimeout(config.systemDatabaseUrl ?? defaultSystemDatabaseUrl(appDatabaseUrl)),
  };
}

/** The CLI is done with the embedded server(s) it joined; the last user out stops a server. */
export async function releaseClientDatabases(): Promise<void> {
  for (const lease of clientLeases.splice(0)) await lease.release();
}

/** Create the database if it does not exist (connecting to the server's `postgres` database). */
export async function ensureDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  const admin = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await admin.connect();
  try {
    const found = await admin.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount === 0) {
      await admin.query(`create database ${pg.escapeIdentifier(name)}`).catch((e: { code?: string }) => {
        if (e.code !== '42P04' && e.code !== '23505') throw e; // created concurrently by a sibling replica
      });
    }
  } finally {
    await admin.end();
  }
}
