// A schedule's current streak of `failed` runs, read from the runs on record (never an in-memory counter), so a
// restart or a second replica reaches the same figure. The failure policy (failurePolicy.ts) acts on it; the
// operator views (status, the dashboard, metrics) show it, without loading the policy's workflow machinery.
//
// What counts: runs in the order they were enqueued, newest first. `failed` adds one; `completed`, a
// `skipped` answered by the API, or a finished `triggered` (accepted by the API) ends the streak; runs still
// in flight and runs we skipped ourselves (a missed slot, a run already in progress) are passed over, since
// they never asked the API. An operator's resume (a `resumed` row in schedule_events) starts a new count, so a resumed schedule
// gets its full allowance again instead of pausing on its next failure.
import { z } from 'zod';
import { FINISHED_WORKFLOW_STATES } from '../runtime/workflowStates.js';
import type { Queryable } from './scheduleEvents.js';
import { runIdPattern } from './slotContext.js';
import { BATCH_STATUS_EVENT } from './status.js';

/** More failures than this are reported as this many (the streak is only walked this far). */
export const MAX_STREAK_COUNTED = 1_000;

/**
 * Per schedule (`$1` names, `$2` their run-ID patterns, `$3` where each count starts, epoch ms): its newest `$5`
 * runs since then, newest enqueued first, each with its latest `batch_evaluation_status` and, once finished, why
 * it skipped (DBOS stores both superjson-wrapped unless the row says portable_json). The streak is the `failed`
 * runs before the first one that ends it (see the module comment), at most `$4`. One statement for any number of
 * schedules: `schedule list` and `/api/schedules` ask for all at once.
 */
const STREAKS_SQL = `
select sc.name, coalesce(st.failures, 0)::int as failures
from unnest($1::text[], $2::text[], $3::bigint[]) as sc(name, pattern, since)
left join lateral (
  select least($4::int, count(*) filter (where r.status = 'failed' and (r.first_end is null or r.rn < r.first_end)))
    as failures
  from (
    select x.status, x.rn, min(x.rn) filter (where x.ends) over () as first_end
    from (
      select ev.v ->> 'status' as status,
        row_number() over (order by s.created_at desc, s.workflow_uuid desc) as rn,
        -- What ends a streak: a completed run; a finished one the API accepted (triggered) or skipped itself.
        -- Runs still in flight and our own skips (a missed slot, a run in progress) say nothing of the API.
        (ev.v ->> 'status' = 'completed'
          or (s.status = any($6::text[])
              and (ev.v ->> 'status' = 'triggered'
                   or (ev.v ->> 'status' = 'skipped' and out.v ->> 'skipped_reason' is null)))) as ends
      from dbos.workflow_status s
      left join lateral (
        select (case when e.serialization = 'portable_json' then e.value::jsonb else e.value::jsonb -> 'json' end) as v
        from dbos.workflow_events e
        where e.workflow_uuid = s.workflow_uuid and e.key = '${BATCH_STATUS_EVENT}'
      ) ev on true
      left join dbos.workflow_output o on o.workflow_uuid = s.workflow_uuid
      left join lateral (
        select (case when s.serialization = 'portable_json' then o.output::jsonb else o.output::jsonb -> 'json' end) as v
        where o.output is not null
      ) out on true
      where s.name = 'trigger' and s.class_name = 'EvaluationBatch' and s.created_at >= sc.since
        and s.workflow_uuid ~ sc.pattern
      order by s.created_at desc, s.workflow_uuid desc
      limit $5
    ) x
  ) r
) st on true`;

/** When each schedule's current count started: its latest operator resume, or the beginning of time (0). */
async function countStarts(appDb: Queryable, names: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await appDb.query(
    `select distinct on (schedule_name) schedule_name, at from schedule_events
      where kind = 'resumed' and schedule_name = any($1::text[])
      order by schedule_name, at desc, id desc`,
    [names],
  );
  const starts = new Map<string, number>();
  for (const raw of rows) {
    const r = z.object({ schedule_name: z.string(), at: z.date() }).parse(raw);
    starts.set(r.schedule_name, r.at.getTime());
  }
  return starts;
}

/** The current streak of `failed` runs of each named schedule (see the module comment for what counts). */
export async function consecutiveFailuresOf(
  systemDb: Queryable,
  appDb: Queryable,
  names: readonly string[],
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (names.length === 0) return out;
  const starts = await countStarts(appDb, names);
  const { rows } = await systemDb.query(STREAKS_SQL, [
    names,
    names.map(runIdPattern),
    names.map((n) => starts.get(n) ?? 0),
    MAX_STREAK_COUNTED,
    MAX_STREAK_COUNTED * 2,
    [...FINISHED_WORKFLOW_STATES],
  ]);
  for (const raw of rows) {
    const r = z.object({ name: z.string(), failures: z.number() }).parse(raw);
    out.set(r.name, r.failures);
  }
  return out;
}

/** The current streak of `failed` runs of one schedule. */
export async function consecutiveFailures(
  systemDb: Queryable,
  appDb: Queryable,
  scheduleName: string,
): Promise<number> {
  return (await consecutiveFailuresOf(systemDb, appDb, [scheduleName])).get(scheduleName) ?? 0;
}
