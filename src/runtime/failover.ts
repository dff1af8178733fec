// Failover and fencing. Every replica runs one loop, every `FAILOVER_AFTER / 10` (0.2–2 s):
//
// 1. Heartbeat: `executor_claims.heartbeat_at = now()` for its own row, written *through its claim
//    connection* and only if the row's generation is still the one it registered. A heartbeat that lands
//    proves the claim was held at that instant; a generation that moved means a peer took this executor
//    over, so what this process was running is stale (see 2).
// 2. Fencing: the first heartbeat that does not land closes the execution fence (executionFence.ts): no step
//    starts and no slot fires until a heartbeat lands again. The process stays up and keeps trying, with a
//    backoff bounded well below FAILOVER_AFTER. Peers can only judge it dead after its claim has been seen
//    free for a full FAILOVER_AFTER, so nothing runs here that a peer may adopt. A heartbeat that lands under
//    the same generation opens the fence again (nobody adopted anything); one that finds the generation
//    moved drops the executions running here (a peer adopted them) and registers a fresh generation.
//    FENCE_EXIT=true keeps the old crash-only rule (onFenced: exit once unconfirmed for FAILOVER_AFTER / 2).
// 3. Watch peers (read in the heartbeat's own statement: one commit a beat): for each other executor whose
//    claim is free (pg_locks, never a probe that takes it),
//    `free_since` records when that was first seen (database clock, so every observer agrees); once it is
//    FAILOVER_AFTER old, one replica (under a transaction lock) takes the dead executor's lock for the
//    duration of the takeover, bumps its generation, re-enqueues its PENDING workflows of our version
//    (recoverExecutorWorkflows) and logs what it adopted. Workflows of other versions are logged, left.
//
// A dead ID that comes back later registers a new generation; what it owned was re-enqueued and dequeued
// by a peer (executor_id and owner token changed), so its own launch recovery finds nothing to run twice.
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { z } from 'zod';
import type { Logger } from '../logger.js';
import type { DatabaseOutage } from './databaseOutage.js';
import { CLAIM_HELD_SQL, CLAIM_LOCK_NAMESPACE, type ExecutorClaim } from './executorGuard.js';
import type { ExecutionFence } from './executionFence.js';

const TAKEOVER_LOCK = 'xyra-scheduler:failover';

export interface FailoverOptions {
  claim: ExecutorClaim;
  /** App database (executor_claims, the claim locks). */
  appPool: pg.Pool;
  /** DBOS system database (to report workflows of other versions). */
  systemPool: pg.Pool;
  applicationName: string;
  version: string;
  failoverAfterMs: number;
  /** Re-enqueue a dead executor's PENDING workflows of our version (dbosInternals.recoverExecutorWorkflows). */
  recover: (executorId: string) => Promise<string[]>;
  /** Closed while the claim is unconfirmed; opened again once it is. */
  fence: ExecutionFence;
  outage: DatabaseOutage;
  /**
   * FENCE_EXIT=true: called once when the claim has been unconfirmed for FAILOVER_AFTER / 2 or was taken over
   * (the caller exits, crash-only). Unset: the replica stays up, fenced, and recovers by itself.
   */
  onFenced?: (reason: string) => void;
  logger: Logger;
}

export interface Failover {
  /** Alive = its claim is held now, or it heartbeated within FAILOVER_AFTER (a claim being re-taken). */
  isExecutorAlive(executorId: string): Promise<boolean>;
  /** This executor and the peers whose claim was held at the last heartbeat, sorted: who shares the work. */
  liveExecutors(): string[];
  stop(): Promise<void>;
}

const peerRow = z.object({
  executor_id: z.string(),
  generation: z.coerce.number(),
  held: z.boolean(),
});
const beatRow = z.object({ landed: z.boolean(), peers: z.array(peerRow) });
const expiryRow = z.object({ expired: z.boolean(), free_ms: z.coerce.number() });
const versionCountRow = z.object({ application_version: z.string().nullable(), n: z.coerce.number() });

export function beatIntervalMs(failoverAfterMs: number): number {
  return Math.min(2_000, Math.max(200, Math.floor(failoverAfterMs / 10)));
}

/**
 * The next heartbeat after `failures` failed ones in a row: from 250 ms (or the beat, if shorter) doubling up to
 * min(2 s, FAILOVER_AFTER / 4), so a replica whose database is back re-takes its claim within ~2 s, long before
 * a peer may judge it gone, and a long outage costs one connection attempt every 2 s, not a storm.
 * (Measured: with a 5 s cap the claim came back 3.2 s after a 25 s outage, bench/RESULTS.md.)
 */
export function retryDelayMs(beatMs: number, failoverAfterMs: number, failures: number): number {
  if (failures === 0) return beatMs;
  const first = Math.min(beatMs, 250);
  const cap = Math.max(first, Math.min(2_000, Math.floor(failoverAfterMs / 4)));
  return Math.min(cap, first * 2 ** Math.min(failures - 1, 20));
}

export async function startFailover(o: FailoverOptions): Promise<Failover> {
  const self = o.claim.executorId;
  const log = o.logger;
  let generation = await register(o);
  let lastConfirmed = performance.now();
  o.fence.confirm();
  let failures = 0;
  let exitReported = false;
  let stopped = false;
  const reportedOtherVersions = new Set<string>();
  const reported = new Set<string>();

  // FENCE_EXIT only: the old crash-only rule, reported once.
  const crashOnly = (reason: string) => {
    if (!o.onFenced || exitReported || stopped) return;
    exitReported = true;
    log.fatal(
      { executorId: self, reason },
      'fenced: FENCE_EXIT is set, exiting (another replica may take over its work)',
    );
    o.onFenced(reason);
  };

  /** The peers as the last heartbeat saw them (read in the heartbeat's own statement: one commit a beat). */
  let peers: Array<z.infer<typeof peerRow>> = [];
  const heartbeat = async () => {
    try {
      const landed = await o.claim.withClaimConnection(async (c) => {
        const r = await c.query(
          `with beat as (
             update executor_claims set heartbeat_at = now(), free_since = null
              where executor_id = $1 and generation = $2 returning 1)
           select exists (select 1 from beat) as landed,
                  coalesce((select json_agg(json_build_object('executor_id', c.executor_id, 'generation', c.generation,
                                                              'held', ${CLAIM_HELD_SQL.replace('$1', 'c.executor_id')}))
                              from executor_claims c
                             where c.executor_id <> $1 and c.adopted_at is null), '[]'::json) as peers`,
          [self, generation],
        );
        const row = beatRow.parse(r.rows[0]);
        peers = row.peers;
        return row.landed;
      });
      if (!landed) {
        // A peer adopted this executor while it was fenced: what runs here is stale; start again.
        const reason = 'another replica took over this executor ID (its generation moved)';
        o.fence.close(reason);
        o.fence.abandon();
        crashOnly(reason);
        log.warn(
          { executorId: self, generation },
          'taken over while fenced: dropping the executions running here (their new owner finishes them), registering a fresh claim',
        );
        generation = await register(o);
      }
      lastConfirmed = performance.now();
      failures = 0;
      o.fence.confirm();
      o.outage.up({ executorId: self });
    } catch (e) {
      failures += 1;
      const err = e instanceof Error ? e.message : String(e);
      o.fence.close(`executor claim not confirmed: ${err}`);
      o.outage.down(err);
      log.debug({ executorId: self, err, failures }, 'could not confirm the executor claim');
      const unconfirmedMs = performance.now() - lastConfirmed;
      if (unconfirmedMs > o.failoverAfterMs / 2) {
        crashOnly(
          `executor claim not confirmed for ${Math.round(unconfirmedMs)} ms (FAILOVER_AFTER is ${o.failoverAfterMs} ms)`,
        );
      }
    }
  };

  const watchPeers = async () => {
    for (const peer of peers) {
      if (peer.held) continue;
      const { rows: exp } = await o.appPool.query(
        `update executor_claims set free_since = coalesce(free_since, now())
          where executor_id = $1 and generation = $2
        returning (now() - free_since) >= make_interval(secs => $3::double precision / 1000) as expired,
                  extract(epoch from now() - free_since) * 1000 as free_ms`,
        [peer.executor_id, peer.generation, o.failoverAfterMs],
      );
      const e = exp[0] === undefined ? undefined : expiryRow.parse(exp[0]);
      if (e?.expired) await takeOver(peer.executor_id, peer.generation, e.free_ms);
    }
  };

  const takeOver = async (dead: string, seenGeneration: number, freeMs: number) => {
    const client = await o.appPool.connect();
    try {
      await client.query('begin');
      const { rows: locks } = await client.query<{ one: boolean; claim: boolean }>(
        `select pg_try_advisory_xact_lock(hashtext($1)) as one,
                pg_try_advisory_xact_lock(hashtext($2), hashtext($3)) as claim`,
        [TAKEOVER_LOCK, CLAIM_LOCK_NAMESPACE, dead],
      );
      // Another replica is taking over right now, or the dead ID just came back: not ours to do.
      if (!locks[0]?.one || !locks[0].claim) return void (await client.query('rollback'));
      const bumped = await client.query(
        `update executor_claims set generation = generation + 1, adopted_by = $3
          where executor_id = $1 and generation = $2 and adopted_at is null
            and free_since <= now() - make_interval(secs => $4::double precision / 1000)`,
        [dead, seenGeneration, self, o.failoverAfterMs],
      );
      if ((bumped.rowCount ?? 0) === 0) return void (await client.query('rollback'));
      // The dead executor's lock is ours until commit, so it cannot come back in the middle of this.
      const adopted = await o.recover(dead);
      const others = await pendingOfOtherVersions(o, dead);
      if (others.length === 0) {
        await client.query('update executor_claims set adopted_at = now() where executor_id = $1', [dead]);
      }
      await client.query('commit');
      if (adopted.length > 0) {
        log.warn(
          {
            deadExecutorId: dead,
            freeForMs: Math.round(freeMs),
            adopted: adopted.length,
            workflowIds: adopted,
            version: o.version,
          },
          `failover: took over ${adopted.length} unfinished workflow(s) of executor ${dead} (claim free for ${Math.round(freeMs)} ms)`,
        );
      } else if (!reported.has(dead)) {
        log.info(
          { deadExecutorId: dead, freeForMs: Math.round(freeMs) },
          `failover: executor ${dead} is gone; it left no unfinished workflows of version ${o.version}`,
        );
      }
      reported.add(dead); // a takeover repeats each beat while other versions' work remains: say it once
      for (const other of others) {
        const key = `${dead}@${other.version}`;
        if (reportedOtherVersions.has(key)) continue;
        reportedOtherVersions.add(key);
        log.warn(
          { deadExecutorId: dead, version: other.version, count: other.count, ourVersion: o.version },
          `failover: ${other.count} unfinished workflow(s) of executor ${dead} are of application version ${other.version}, not ours (${o.version}): not taken over; a replica of that version recovers them`,
        );
      }
    } catch (e) {
      await client.query('rollback').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  };

  const interval = beatIntervalMs(o.failoverAfterMs);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = (async () => {
      await heartbeat();
      // A fenced replica judges nobody: its own view of the database is the one in doubt.
      if (stopped || failures > 0) return;
      await watchPeers().catch((e: unknown) =>
        log.warn({ err: e instanceof Error ? e.message : String(e) }, 'failover: could not check the other replicas'),
      );
    })().finally(() => {
      if (!stopped && !(exitReported && o.onFenced))
        timer = setTimeout(tick, retryDelayMs(interval, o.failoverAfterMs, failures));
    });
  };
  timer = setTimeout(tick, interval);

  return {
    async isExecutorAlive(executorId) {
      // This process is up: its runs are finished here once the fence opens, or by a peer that adopts them.
      if (executorId === self) return true;
      const { rows } = await o.appPool.query<{ alive: boolean }>(
        `select ${CLAIM_HELD_SQL}
             or coalesce((select heartbeat_at > now() - make_interval(secs => $2::double precision / 1000)
                            from executor_claims where executor_id = $1), false) as alive`,
        [executorId, o.failoverAfterMs],
      );
      return rows[0]?.alive === true;
    },
    liveExecutors() {
      return [self, ...peers.filter((p) => p.held).map((p) => p.executor_id)].sort();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running.catch(() => undefined);
    },
  };
}

/** Registers this process's claim: a new generation, fresh heartbeat, no longer adopted. */
async function register(o: FailoverOptions): Promise<number> {
  const { rows } = await o.claim.withClaimConnection((c) =>
    c.query<{ generation: string }>(
      `insert into executor_claims (executor_id, application_version) values ($1, $2)
       on conflict (executor_id) do update
         set generation = executor_claims.generation + 1, application_version = excluded.application_version,
             claimed_at = now(), heartbeat_at = now(), free_since = null, adopted_at = null, adopted_by = null
       returning generation`,
      [o.claim.executorId, o.version],
    ),
  );
  return Number(rows[0]!.generation);
}

async function pendingOfOtherVersions(
  o: FailoverOptions,
  executorId: string,
): Promise<Array<{ version: string; count: number }>> {
  const { rows } = await o.systemPool.query(
    `select application_version, count(*) as n from dbos.workflow_status
      where executor_id = $1 and status = 'PENDING' and application_version is distinct from $2
        and (application_name = $3 or application_name is null)
      group by application_version`,
    [executorId, o.version, o.applicationName],
  );
  return rows
    .map((r) => versionCountRow.parse(r))
    .map((r) => ({ version: r.application_version ?? '(none)', count: r.n }));
}
