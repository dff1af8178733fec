// Serialises start-up across replicas: two processes launching DBOS on a fresh database at the same moment
// race its system-database migrations ("tuple concurrently updated").
import pg from 'pg';

const STARTUP_LOCK_KEY = 'xyra-scheduler:startup';

export async function withStartupLock<T>(databaseUrl: string, fn: () => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'xyra-scheduler-startup' });
  await client.connect();
  try {
    await client.query('select pg_advisory_lock(hashtext($1))', [STARTUP_LOCK_KEY]);
    return await fn();
  } finally {
    await client.query('select pg_advisory_unlock(hashtext($1))', [STARTUP_LOCK_KEY]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}
