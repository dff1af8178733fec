// The executor claim: refuses a second live replica with the same EXECUTOR_ID (DBOS recovery would let
// both run one workflow), is the liveness signal failover reads (src/runtime/failover.ts), and warns when
// this replica's code version is not the latest one registered.
//
// The claim is a session-level advisory lock held on a dedicated connection for the process lifetime:
// Postgres drops it when the process dies, however it dies, so a crashed replica never blocks its own
// restart. It is taken in the app database because it must be held before DBOS launches (launch starts
// recovering this executor's workflows at once) and the system database may not exist yet then; the
// app and system databases of one deployment are a fixed pair.
//
// A claim connection can drop while the process lives (pg_terminate_backend, a Postgres restart, a network
// cut): the claim is then lost, `withClaimConnection` re-takes it on a new connection, and failover's
// fencing decides what a replica that cannot re-take it in time must do.
import pg from 'pg';
import { ExecutorConflictError } from '../errors.js';
import type { Logger } from '../logger.js';

export const CLAIM_LOCK_NAMESPACE = 'xyra-scheduler:executor';
export const CLAIM_APPLICATION_NAME = 'xyra-scheduler-executor-claim';
/** Start-up retries a taken claim this often, briefly: a peer's takeover holds a dead ID's lock for a moment. */
const START_ATTEMPTS = 4;
const START_RETRY_MS = 250;
const CLAIM_SQL = 'select pg_try_advisory_lock(hashtext($1), hashtext($2)) as ok';

/**
 * Is the claim of `executorId` held right now, by any session? Read from pg_locks, so asking never takes
 * the lock (a probe that took it, even for an instant, could make a starting replica fail its claim).
 * Parameters: $1 = executor ID. The two-key advisory lock shows as classid = key1, objid = key2, objsubid 2.
 */
export const CLAIM_HELD_SQL = `exists (select 1 from pg_locks l
   where l.locktype = 'advisory' and l.granted and l.objsubid = 2
     and l.database = (select oid from pg_database where datname = current_database())
     and l.classid = hashtext('${CLAIM_LOCK_NAMESPACE}')::oid and l.objid = hashtext($1)::oid)`;

export interface ExecutorClaim {
  readonly executorId: string;
  /** False from the moment the claim connection fails until it is re-taken. */
  readonly held: boolean;
  /**
   * Runs `fn` on the claim connection, re-taking a lost claim first: a statement that succeeds there
   * proves the claim was held when it ran. Throws ClaimLostError when the claim cannot be (re-)taken.
   */
  withClaimConnection<T>(fn: (client: pg.Client) => Promise<T>): Promise<T>;
  release(): Promise<void>;
}

/** The claim is not held and could not be re-taken just now (database unreachable, or another holder). */
export class ClaimLostError extends Error {
  constructor(
    readonly executorId: string,
    reason: string,
  ) {
    super(`executor claim "${executorId}" is not held: ${reason}`);
    this.name = 'ClaimLostError';
  }
}

async function tryClaim(
  appDatabaseUrl: string,
  executorId: string,
  queryTimeoutMs: number,
): Promise<pg.Client | undefined> {
  const client = new pg.Client({
    connectionString: appDatabaseUrl,
    application_name: CLAIM_APPLICATION_NAME,
    keepAlive: true,
    connectionTimeoutMillis: queryTimeoutMs,
    query_timeout: queryTimeoutMs,
  });
  client.on('error', () => undefined); // replaced by the claim's own handler once taken
  await client.connect();
  try {
    const { rows } = await client.query<{ ok: boolean }>(CLAIM_SQL, [CLAIM_LOCK_NAMESPACE, executorId]);
    if (rows[0]?.ok) return client;
  } catch (e) {
    await client.end().catch(() => undefined);
    throw e;
  }
  await client.end().catch(() => undefined);
  return undefined;
}

export async function assertExecutorIdFree(
  appDatabaseUrl: string,
  executorId: string,
  logger: Logger,
  queryTimeoutMs = 5_000,
  /** Called at once when the claim connection drops (instead of logging it): the service fences then. */
  onLost?: (reason: string) => void,
): Promise<ExecutorClaim> {
  let client: pg.Client | undefined;
  for (let attempt = 1; attempt <= START_ATTEMPTS && !client; attempt++) {
    client = await tryClaim(appDatabaseUrl, executorId, queryTimeoutMs);
    if (!client && attempt < START_ATTEMPTS) await new Promise((r) => setTimeout(r, START_RETRY_MS));
  }
  if (!client) throw new ExecutorConflictError(executorId);

  let current: pg.Client | undefined;
  let released = false;
  let retaking: Promise<pg.Client> | undefined;
  const adopt = (c: pg.Client) => {
    current = c;
    const lost = (reason: string) => {
      if (current !== c) return;
      current = undefined;
      c.end().catch(() => undefined);
      // The claim is gone with the connection: until it is re-taken, peers may judge this replica dead.
      if (released) return;
      if (onLost) onLost(reason);
      else logger.error({ err: reason, executorId }, 'lost the executor claim connection');
    };
    c.removeAllListeners('error');
    c.on('error', (e) => lost(e.message));
    c.on('end', () => lost('connection ended'));
  };
  adopt(client);

  const retake = async (): Promise<pg.Client> => {
    const c = await tryClaim(appDatabaseUrl, executorId, queryTimeoutMs).catch((e: unknown) => {
      throw new ClaimLostError(executorId, e instanceof Error ? e.message : String(e));
    });
    if (!c) throw new ClaimLostError(executorId, 'another session holds it');
    if (released) {
      await c.end().catch(() => undefined);
      throw new ClaimLostError(executorId, 'released');
    }
    adopt(c);
    logger.info({ executorId }, 're-took the executor claim on a new connection');
    return c;
  };

  return {
    executorId,
    get held() {
      return current !== undefined;
    },
    async withClaimConnection(fn) {
      if (released) throw new ClaimLostError(executorId, 'released');
      let c = current;
      if (!c) {
        retaking ??= retake().finally(() => (retaking = undefined));
        c = await retaking;
      }
      try {
        return await fn(c);
      } catch (e) {
        // A statement that timed out leaves the connection in doubt: drop it, so the next call re-takes.
        if (current === c && /timeout|terminat|Connection/i.test(e instanceof Error ? e.message : '')) {
          current = undefined;
          await c.end().catch(() => undefined);
        }
        throw e;
      }
    },
    async release() {
      if (released) return;
      released = true;
      const c = current;
      current = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}

/**
 * Warns when another version of the app is registered as the latest: DBOS enqueues scheduled slots for
 * the latest version only, and recovers a replica's work only on the same version. Reads the system
 * database directly so it can run before launch; a system database not created yet has no versions.
 */
export async function warnIfNotLatestVersion(
  systemDatabaseUrl: string,
  applicationName: string,
  version: string,
  logger: Logger,
): Promise<string | undefined> {
  const client = new pg.Client({
    connectionString: systemDatabaseUrl,
    application_name: 'xyra-scheduler-version-check',
  });
  try {
    await client.connect();
    const { rows } = await client.query<{ version_name: string }>(
      `select version_name from dbos.application_versions
       where application_name = $1 or application_name is null
       order by version_timestamp desc limit 1`,
      [applicationName],
    );
    const latest = rows[0]?.version_name;
    if (latest !== undefined && latest !== version) {
      logger.warn(
        { version, latestVersion: latest },
        `this replica runs version ${version} but the latest registered version is ${latest}: ` +
          'scheduled slots go to the latest version, and workflows of other versions are not recovered here',
      );
    }
    return latest;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === '3D000' || code === '42P01' || code === '3F000') return undefined; // no system database/schema yet
    throw e;
  } finally {
    await client.end().catch(() => undefined);
  }
}
