// The schedule's own log (table `schedule_events`, app database): pauses with their note and who paused,
// resumes, missed slots summed up after a long outage, backfills. Runs themselves live in DBOS's tables.
import { z } from 'zod';

export const SCHEDULE_EVENT_KINDS = [
  'created',
  'updated',
  'deleted',
  'paused',
  'resumed',
  'missed_summary',
  'backfill',
] as const;
export type ScheduleEventKind = (typeof SCHEDULE_EVENT_KINDS)[number];

import type { Queryable } from '../runtime/databases.js';
export type { Queryable };

export const scheduleEventSchema = z.object({
  id: z.union([z.number(), z.string()]).transform(String),
  schedule_name: z.string(),
  kind: z.enum(SCHEDULE_EVENT_KINDS),
  at: z.date().transform((d) => d.toISOString()),
  note: z.string().nullable(),
  /**
   * Changes of the schedule (src/evaluation/scheduleStore.ts) carry { before, after, version, effective_from, by }:
   * - created, updated, deleted
   * - paused:         + { consecutive_failures?, workflow_id? } (by: operator | failure_policy | …)
   * - resumed:        + { paused_at? }
   * - missed_summary: { count, first_slot, last_slot, window_ms }  (slots older than BATCH_CATCH_UP_WINDOW)
   * - backfill:       { from, to, slots }
   */
  details: z.record(z.string(), z.unknown()),
});
export type ScheduleEvent = z.output<typeof scheduleEventSchema>;

export interface NewScheduleEvent {
  scheduleName: string;
  kind: ScheduleEventKind;
  note?: string | null;
  details?: Record<string, unknown>;
  /** Defaults to now (the database's clock). */
  at?: Date;
}

export async function recordScheduleEvent(db: Queryable, e: NewScheduleEvent): Promise<ScheduleEvent> {
  const { rows } = await db.query(
    `insert into schedule_events (schedule_name, kind, note, details, at)
     values ($1, $2, $3, $4::jsonb, coalesce($5, now()))
     returning id, schedule_name, kind, at, note, details`,
    [e.scheduleName, e.kind, e.note ?? null, JSON.stringify(e.details ?? {}), e.at ?? null],
  );
  return scheduleEventSchema.parse(rows[0]);
}

export interface ScheduleEventQuery {
  scheduleName: string;
  kinds?: readonly ScheduleEventKind[];
  /** Only events at or after this time. */
  since?: Date;
  limit: number;
}

/** Newest first. */
export async function listScheduleEvents(db: Queryable, q: ScheduleEventQuery): Promise<ScheduleEvent[]> {
  const { rows } = await db.query(
    `select id, schedule_name, kind, at, note, details from schedule_events
      where schedule_name = $1
        and ($2::text[] is null or kind = any($2::text[]))
        and ($3::timestamptz is null or at >= $3)
      order by at desc, id desc
      limit $4`,
    [q.scheduleName, q.kinds ? [...q.kinds] : null, q.since ?? null, q.limit],
  );
  return rows.map((r) => scheduleEventSchema.parse(r));
}
