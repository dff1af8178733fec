// The overlap guard: is another batch run in progress? A run is in progress once it has published
// `triggered`. Deciding and publishing happen under one Postgres advisory lock (the "gate"), held from the
// check until the run's `triggered` event is written, so two runs deciding at the same instant can never
// both call the API: the second to take the gate sees the first's `triggered`. The state is read straight
// from the DBOS system tables, because DBOS forbids getEvent inside a step and the decision must be a step.
//
// A run blocks new slots only while someone will finish it: its executor is alive (claim held or fresh
// heartbeat, see src/runtime/failover.ts), or it has been adopted (re-enqueued by failover or by its own
// executor's restart: ENQUEUED again). A run of a dead executor that nobody adopted blocks nothing.
// The gate never outlives its run: the workflow releases it in a `finally` from the decision on, a process
// that dies takes its session (and the lock) with it, and a gate held longer than GATE_HOLD_MAX_MS is
// released with a warning, whatever happened to its holder.
import pg from 'pg';
import { z } from 'zod';
import { DEFAULT_SCHEDULE, runIdPattern } from './slotContext.js';
import { BATCH_STATUS_EVENT } from './status.js';

const GATE_LOCK = 'xyra-scheduler:batch-gate';
/** Taking the gate waits at most this long; the holder keeps it for milliseconds. */
const GATE_WAIT_MS = 30_000;
/** A holder keeps the gate for milliseconds (one event write); past this it is released regardless. */
export const GATE_HOLD_MAX_MS = 20_000;

/** Is this executor alive (it will finish its PENDING runs)? */
export type ExecutorAliveCheck = (executorId: string) => Promise<boolean>;

const rowSchema = z.object({
  workflow_uuid: z.string(),
  value: z.string(),
  status: z.string(),
  executor_id: z.string().nullable(),
});
/** Events are stored superjson-wrapped (`{"json": {...}}`); a plain JSON value is accepted too. */
const eventValueSchema = z.union([
  z.object({ json: z.object({ status: z.string() }) }),
  z.object({ status: z.string() }),
]);

interface HeldGate {
  client: pg.PoolClient;
  timer: NodeJS.Timeout;
  lock: string;
}

/** One gate per schedule: runs of different schedules never wait for each other. */
function gateLock(scheduleName: string): string {
  return scheduleName === DEFAULT_SCHEDULE ? GATE_LOCK : `${GATE_LOCK}:${scheduleName}`;
}
/** Gates held by runs of this process, by workflow ID, until their `triggered` event is written. */
const heldGates = new Map<string, HeldGate>();

/**
 * The ID of another unfinished batch run that has published `triggered` (so is calling the API) and that
 * someone will finish: adopted (ENQUEUED again) or PENDING on a live executor.
 */
async function findRunInProgress(
  client: pg.PoolClient,
  scheduleName: string,
  workflowId: string,
  isAlive: ExecutorAliveCheck,
): Promise<string | undefined> {
  const { rows } = await client.query(
    `select s.workflow_uuid, s.status, s.executor_id, e.value
       from dbos.workflow_status s
       join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid and e.key = $2
      where s.status in ('PENDING', 'ENQUEUED') and s.class_name = 'EvaluationBatch' and s.name = 'trigger'
        and s.workflow_uuid <> $1 and s.workflow_uuid ~ $3
      order by s.created_at`,
    [workflowId, BATCH_STATUS_EVENT, runIdPattern(scheduleName)],
  );
  for (const raw of rows) {
    const row = rowSchema.parse(raw);
    const parsed = eventValueSchema.safeParse(JSON.parse(row.value));
    if (!parsed.success) continue;
    const status = 'json' in parsed.data ? parsed.data.json.status : parsed.data.status;
    if (status !== 'triggered') continue;
    if (row.status === 'ENQUEUED') return row.workflow_uuid; // adopted: a replica will resume it
    if (row.executor_id !== null && (await isAlive(row.executor_id))) return row.workflow_uuid;
  }
  return undefined;
}

/**
 * Take the gate and look for a run in progress. Returns the blocker's ID (the gate is released), or
 * undefined: then the caller holds the gate and must call `releaseGate` once its `triggered` is written.
 */
export async function enterGate(
  pool: pg.Pool,
  scheduleName: string,
  workflowId: string,
  isAlive: ExecutorAliveCheck,
  onHeldTooLong?: () => void,
  holdMaxMs = GATE_HOLD_MAX_MS,
): Promise<string | undefined> {
  const client = await pool.connect();
  try {
    await client.query(`select set_config('lock_timeout', $1, false)`, [`${GATE_WAIT_MS}ms`]);
    await client.query('select pg_advisory_lock(hashtext($1))', [gateLock(scheduleName)]);
  } catch (e) {
    client.release(true);
    throw e;
  }
  try {
    const blocker = await findRunInProgress(client, scheduleName, workflowId, isAlive);
    if (blocker === undefined) {
      const timer = setTimeout(() => {
        onHeldTooLong?.();
        void releaseGate(workflowId);
      }, holdMaxMs);
      timer.unref();
      heldGates.set(workflowId, { client, timer, lock: gateLock(scheduleName) });
      return undefined;
    }
    await unlock(client, gateLock(scheduleName));
    return blocker;
  } catch (e) {
    await unlock(client, gateLock(scheduleName));
    throw e;
  }
}

/** Release the gate this run holds, if any (a recovered run replays its decision and holds none). */
export async function releaseGate(workflowId: string): Promise<void> {
  const held = heldGates.get(workflowId);
  if (!held) return;
  heldGates.delete(workflowId);
  clearTimeout(held.timer);
  await unlock(held.client, held.lock);
}

/** How many gates this process holds (0 whenever no run is between deciding and publishing). */
export function gatesHeld(): number {
  return heldGates.size;
}

async function unlock(client: pg.PoolClient, lock: string): Promise<void> {
  try {
    await client.query('select pg_advisory_unlock(hashtext($1))', [lock]);
    client.release();
  } catch {
    client.release(true); // a broken connection takes its session lock with it
  }
}

/** How often a buffered run looks again whether the run ahead of it has finished. */
const BUFFER_POLL_MS = 100;

/**
 * Overlap `buffer_one`: the run becomes the schedule's one waiting run, if no other is waiting, and waits until
 * nothing is in progress. Returns true holding the gate (as enterGate does), false when another run already
 * waits (this one is then skipped). "One waiting" is a session advisory lock on a dedicated connection held
 * while waiting: a process that dies takes it with it, and a recovered run re-enters here.
 */
export async function waitAsBuffered(
  pool: pg.Pool,
  scheduleName: string,
  workflowId: string,
  isAlive: ExecutorAliveCheck,
  onHeldTooLong?: () => void,
): Promise<boolean> {
  const client = new pg.Client({ ...pool.options, application_name: 'xyra-overlap-buffer' });
  await client.connect();
  try {
    const { rows } = await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [
      `${GATE_LOCK}:buffer:${scheduleName}`,
    ]);
    if (!rows[0]?.ok) return false;
    for (;;) {
      const blocker = await enterGate(pool, scheduleName, workflowId, isAlive, onHeldTooLong);
      if (blocker === undefined) return true;
      await new Promise((r) => setTimeout(r, BUFFER_POLL_MS));
    }
  } finally {
    await client.end().catch(() => undefined); // the session ends: the buffer lock is released
  }
}
