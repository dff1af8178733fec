// Serialises start-up across replicas: two processes launching DBOS on a fresh database at the same moment
// race its system-database migrations ("tuple concurrently updated").
import pg from 'pg';
import { StartupAbortedError } from '../errors.js';

const STARTUP_LOCK_KEY = 'xyra-scheduler:startup';
/** How often a waiting replica tries the lock again (it waits while another replica launches). */
const RETRY_MS = 200;

/** `signal`: stop waiting for the lock when start-up is interrupted (a blocking pg_advisory_lock could not). */
export async function withStartupLock<T>(databaseUrl: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'xyra-scheduler-startup' });
  await client.connect();
  try {
    for (;;) {
      const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock(hashtext($1)) as locked', [
        STARTUP_LOCK_KEY,
      ]);
      if (rows[0]?.locked) break;
      if (signal?.aborted) throw new StartupAbortedError();
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
    return await fn();
  } finally {
    await client.query('select pg_advisory_unlock(hashtext($1))', [STARTUP_LOCK_KEY]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}
