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
  const name = `xt_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: withDatabase(serverUrl(), 'postgres') });
  await admin.connect();
  try {
    await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  return withDatabase(serverUrl(), name);
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
