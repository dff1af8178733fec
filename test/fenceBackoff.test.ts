// The fenced replica's retry schedule (failover.retryDelayMs) and what counts as the database being away
// (databaseOutage.isConnectionError, checked against errors a real stopped/unreachable server gives).
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isConnectionError } from '../src/runtime/databaseOutage.js';
import { beatIntervalMs, retryDelayMs } from '../src/runtime/failover.js';

describe('retryDelayMs', () => {
  it('doubles from 250 ms to min(2 s, FAILOVER_AFTER/4), and is the plain beat when nothing failed', () => {
    const beat = beatIntervalMs(30_000);
    expect(beat).toBe(2_000);
    expect([0, 1, 2, 3, 4, 5, 50].map((f) => retryDelayMs(beat, 30_000, f))).toEqual([
      2_000, 250, 500, 1_000, 2_000, 2_000, 2_000,
    ]);
    const shortBeat = beatIntervalMs(3_000);
    expect([1, 2, 3, 4].map((f) => retryDelayMs(shortBeat, 3_000, f))).toEqual([250, 500, 750, 750]);
  });
});

describe('isConnectionError', () => {
  it('is true for a refused connection and false for an SQL error', async () => {
    const refused = new pg.Client({
      connectionString: 'postgresql://postgres@127.0.0.1:9/postgres',
      connectionTimeoutMillis: 2_000,
    });
    const e = await refused.connect().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isConnectionError(e)).toBe(true);
    const db = new pg.Client({ connectionString: process.env.XYRA_TEST_SERVER_URL });
    await db.connect();
    try {
      const sqlError = await db.query('select * from no_such_table').then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isConnectionError(sqlError)).toBe(false);
      const killed = new pg.Client({ connectionString: process.env.XYRA_TEST_SERVER_URL });
      killed.on('error', () => undefined);
      await killed.connect();
      const pid = (await killed.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      const pending = killed.query('select pg_sleep(30)').then(
        () => undefined,
        (err: unknown) => err,
      );
      await new Promise((r) => setTimeout(r, 200));
      await db.query('select pg_terminate_backend($1)', [pid]);
      expect(isConnectionError(await pending)).toBe(true);
    } finally {
      await db.end();
    }
  });
});
