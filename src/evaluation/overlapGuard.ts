// The overlap guard: is another batch run in progress? A run is in progress once it has published
// `triggered`. Deciding and publishing happen under one Postgres advisory lock (the "gate"), held from the
// check until the run's `triggered` event is written, so two runs deciding at the same instant can never
// both call the API: the second to take the gate sees the first's `triggered`. The state is read straight
// from the DBOS system tables, because DBOS forbids getEvent inside a step and the decision must be a step.
import pg from 'pg';
import { z } from 'zod';
import { BATCH_STATUS_EVENT } from './status.js';

const GATE_LOCK = 'xyra-scheduler:batch-gate';
/** Taking the gate waits at most this long; the holder keeps it for milliseconds. */
const GATE_WAIT_MS = 30_000;

const rowSchema = z.object({ workflow_uuid: z.string(), value: z.string() });
/** Events are stored superjson-wrapped (`{"json": {...}}`); a plain JSON value is accepted too. */
const eventValueSchema = z.union([z.object({ json: z.object({ status: z.string() }) }), z.object({ status: z.string() })]);

/** Gates held by runs of this process, by workflow ID, until their `triggered` event is written. */
const heldGates = new Map<string, pg.PoolClient>();

/**
 * The ID of another PENDING batch run that has published `triggered` (so is calling the API), if any.
 * Runs created before `staleBeforeMs` are presumed abandoned (e.g. a replica that never came back).
 */
async function findRunInProgress(client: pg.PoolClient, workflowId: string, staleBeforeMs: number): Promise<string | undefined> {
  const { rows } = await client.query(
    `select s.workflow_uuid, e.value
       from dbos.workflow_status s
       join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid and e.key = $2
      where s.status = 'PENDING' and s.class_name = 'EvaluationBatch' and s.name = 'trigger'
        and s.workflow_uuid <> $1 and s.created_at >= $3
      order by s.created_at`,
    [workflowId, BATCH_STATUS_EVENT, staleBeforeMs],
  );
  for (const raw of rows) {
    const row = rowSchema.parse(raw);
    const parsed = eventValueSchema.safeParse(JSON.parse(row.value));
    if (!parsed.success) continue;
    const status = 'json' in parsed.data ? parsed.data.json.status : parsed.data.status;
    if (status === 'triggered') return row.workflow_uuid;
  }
  return undefined;
}

/**
 * Take the gate and look for a run in progress. Returns the blocker's ID (the gate is released), or
 * undefined: then the caller holds the gate and must call `releaseGate` once its `triggered` is written.
 */
export async function enterGate(pool: pg.Pool, workflowId: string, staleBeforeMs: number): Promise<string | undefined> {
  const client = await pool.connect();
  try {
    await client.query(`select set_config('lock_timeout', $1, false)`, [`${GATE_WAIT_MS}ms`]);
    await client.query('select pg_advisory_lock(hashtext($1))', [GATE_LOCK]);
  } catch (e) {
    client.release(true);
    throw e;
  }
  try {
    const blocker = await findRunInProgress(client, workflowId, staleBeforeMs);
    if (blocker === undefined) {
      heldGates.set(workflowId, client);
      return undefined;
    }
    await unlock(client);
    return blocker;
  } catch (e) {
    await unlock(client);
    throw e;
  }
}

/** Release the gate this run holds, if any (a recovered run replays its decision and holds none). */
export async function releaseGate(workflowId: string): Promise<void> {
  const client = heldGates.get(workflowId);
  if (!client) return;
  heldGates.delete(workflowId);
  await unlock(client);
}

async function unlock(client: pg.PoolClient): Promise<void> {
  try {
    await client.query('select pg_advisory_unlock(hashtext($1))', [GATE_LOCK]);
    client.release();
  } catch {
    client.release(true); // a broken connection takes its session lock with it
  }
}
