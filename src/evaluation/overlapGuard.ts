// The overlap guard's query: is an older batch run still in progress? Read straight from the DBOS system
// tables, because DBOS forbids getEvent inside a step and the decision must be a checkpointed step.
import pg from 'pg';
import { z } from 'zod';
import { BATCH_STATUS_EVENT } from './status.js';

const rowSchema = z.object({ workflow_uuid: z.string(), value: z.string() });
/** Events are stored superjson-wrapped (`{"json": {...}}`); a plain JSON value is accepted too. */
const eventValueSchema = z.union([z.object({ json: z.object({ status: z.string() }) }), z.object({ status: z.string() })]);

/**
 * The ID of an older PENDING batch run that has published `triggered` (so is calling the API), if any.
 * "Older" (created earlier, ties broken by ID) means two runs that see each other never both skip, and a
 * run still deciding (a backfilled slot about to be skipped as missed) blocks nobody. Runs created before
 * `staleBeforeMs` are presumed abandoned (e.g. a replica that never came back) and ignored.
 */
export async function findRunInProgress(pool: pg.Pool, workflowId: string, staleBeforeMs: number): Promise<string | undefined> {
  const { rows } = await pool.query(
    `with me as (select coalesce((select created_at from dbos.workflow_status where workflow_uuid = $1),
                                 (extract(epoch from now()) * 1000)::bigint) as created_at)
     select s.workflow_uuid, e.value
       from dbos.workflow_status s
       join dbos.workflow_events e on e.workflow_uuid = s.workflow_uuid and e.key = $2, me
      where s.status = 'PENDING' and s.class_name = 'EvaluationBatch' and s.name = 'trigger'
        and s.workflow_uuid <> $1 and s.created_at >= $3
        and (s.created_at < me.created_at or (s.created_at = me.created_at and s.workflow_uuid < $1))
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
