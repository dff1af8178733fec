// Per-test-file databases on the run's Postgres server (see globalSetup.ts).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { defaultSystemDatabaseUrl } from '../../src/config.js';
import { withDatabase } from '../../src/runtime/databases.js';

export function serverUrl(): string {
  const url = process.env.XYRA_TEST_SERVER_URL;
  if (!url) throw new Error('XYRA_TEST_SERVER_URL is not set: run tests through vitest (globalSetup)');
  return url;
}

/** Create a fresh, empty app database; its DBOS system database will be `<name>_dbos_sys`. */
export async function createTestDatabase(label: string): Promise<string> {
  const name = testDatabaseName(label);
  await createDatabases([[name, undefined]]);
  return withDatabase(serverUrl(), name);
}

/**
 * Create an app database and its DBOS system database (`<name>_dbos_sys`) as copies of the run's migrated templates
 * (globalSetup.ts): what a service finds after its first start, our tables and DBOS's schema in place, with no row.
 * For tests whose subject is not the first start: a copy takes ~0.4 s where creating and migrating both takes
 * 2–3 s on a loaded machine. Tests of the first start (migrations, two replicas racing DBOS's own) use
 * createTestDatabase.
 */
export async function createMigratedTestDatabase(label: string): Promise<string> {
  const template = process.env[TEMPLATE_ENV];
  if (!template) throw new Error(`${TEMPLATE_ENV} is not set: run tests through vitest (globalSetup)`);
  const name = testDatabaseName(label);
  await createDatabases([
    [name, template],
    [`${name}_dbos_sys`, `${template}_dbos_sys`],
  ]);
  return withDatabase(serverUrl(), name);
}

/** The environment variable naming the migrated template database (globalSetup.ts sets it). */
export const TEMPLATE_ENV = 'XYRA_TEST_TEMPLATE_DATABASE';

function testDatabaseName(label: string): string {
  return `xt_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
}

/** Creates each database, empty or as a copy of its template, on the run's server. */
export async function createDatabases(databases: [name: string, template: string | undefined][]): Promise<void> {
  const admin = new pg.Client({ connectionString: withDatabase(serverUrl(), 'postgres') });
  await admin.connect();
  try {
    for (const [name, template] of databases)
      await admin.query(
        `create database ${pg.escapeIdentifier(name)}${template ? ` template ${pg.escapeIdentifier(template)}` : ''}`,
      );
  } finally {
    await admin.end();
  }
}

/** Run a query against any database URL (app or system) and return its rows. */
export async function query<T extends pg.QueryResultRow = Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** The service's default system database for this app database. */
export const systemDatabaseUrlOf = defaultSystemDatabaseUrl;

/** Drops the databases (sessions still connected are ended). */
export async function dropDatabases(names: string[]): Promise<void> {
  const admin = new pg.Client({ connectionString: withDatabase(serverUrl(), 'postgres') });
  await admin.connect();
  try {
    for (const name of names) await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  } finally {
    await admin.end();
  }
}
