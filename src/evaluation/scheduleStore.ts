// The `schedules` table: the one place schedules are created, changed, paused, resumed and deleted. Every
// change is one transaction that locks the row, bumps `version`, writes the `schedule_events` audit row
// ({before, after, version, effective_from, by}) and NOTIFYs `xyra_schedules`, so every replica's engine
// re-reads the row within milliseconds of the commit. The CLI, `/api/schedules`, `apply`, the BATCH_*
// reconciliation at start-up and the failure policy all come through here (one pause path).
import type pg from 'pg';
import { z } from 'zod';
import type { Queryable } from '../runtime/databases.js';
import {
  applyPatch,
  sameSpec,
  SPEC_FIELDS,
  type ManagedBy,
  type SchedulePatch,
  type ScheduleSpec,
} from './scheduleSpec.js';
import { recordScheduleEvent, type ScheduleEventKind } from './scheduleEvents.js';

/** The channel every change is announced on (payload: the schedule's name). */
export const SCHEDULES_CHANNEL = 'xyra_schedules';

export interface ScheduleRow extends ScheduleSpec {
  status: 'ACTIVE' | 'PAUSED';
  paused_reason: string | null;
  version: number;
  effective_from: string;
  managed_by: ManagedBy;
  fired_through: string | null;
  created_at: string;
  updated_at: string;
}

export class ScheduleExistsError extends Error {
  constructor(readonly scheduleName: string) {
    super(`schedule "${scheduleName}" already exists`);
    this.name = 'ScheduleExistsError';
  }
}

export class UnknownScheduleError extends Error {
  constructor(readonly scheduleName: string) {
    super(`schedule "${scheduleName}" not found`);
    this.name = 'UnknownScheduleError';
  }
}

const iso = z.date().transform((d) => d.toISOString());
const rowSchema = z.object({
  name: z.string(),
  cron: z.string(),
  timezone: z.string(),
  payload: z.record(z.string(), z.unknown()),
  catch_up: z.enum(['latest', 'all', 'none']),
  catch_up_window: z.string(),
  overlap: z.enum(['skip', 'buffer_one', 'allow_all']),
  pause_after_failures: z.number(),
  start_at: iso.nullable(),
  end_at: iso.nullable(),
  note: z.string().nullable(),
  status: z.enum(['ACTIVE', 'PAUSED']),
  paused_reason: z.string().nullable(),
  version: z.number(),
  effective_from: iso,
  managed_by: z.enum(['env', 'api', 'cli', 'file']),
  fired_through: iso.nullable(),
  created_at: iso,
  updated_at: iso,
});

const COLUMNS = `name, cron, timezone, payload, catch_up, catch_up_window, overlap, pause_after_failures, start_at, end_at,
  note, status, paused_reason, version, effective_from, managed_by, fired_through, created_at, updated_at`;

export function parseScheduleRow(raw: unknown): ScheduleRow {
  return rowSchema.parse(raw);
}

export function specOf(row: ScheduleSpec): ScheduleSpec {
  return Object.fromEntries(SPEC_FIELDS.map((f) => [f, row[f]])) as unknown as ScheduleSpec;
}

export async function listScheduleRows(db: Queryable): Promise<ScheduleRow[]> {
  const { rows } = await db.query(`select ${COLUMNS} from schedules order by name`);
  return rows.map(parseScheduleRow);
}

export async function getScheduleRow(db: Queryable, name: string): Promise<ScheduleRow | null> {
  const { rows } = await db.query(`select ${COLUMNS} from schedules where name = $1`, [name]);
  return rows[0] ? parseScheduleRow(rows[0]) : null;
}

/**
 * The row as a run's gate must judge it: an edit, pause, resume or delete still in flight is waited for (its lock,
 * taken before the instant it takes effect from, see lockRow), so a slot at or after that instant is never judged
 * by the row before it. `for key share` waits for those (they lock `for update`), not for `fired_through` moves.
 */
export async function getScheduleRowSettled(db: Queryable, name: string): Promise<ScheduleRow | null> {
  const { rows } = await db.query(`select ${COLUMNS} from schedules where name = $1 for key share`, [name]);
  return rows[0] ? parseScheduleRow(rows[0]) : null;
}

/** Anything we can take a client from for a transaction (a pg.Pool). */
export interface ClientSource {
  connect(): Promise<pg.PoolClient>;
}

async function inTransaction<T>(pool: ClientSource, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (e) {
    await client.query('rollback').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}

/**
 * Locks the row for a change and reads the instant the change takes effect from: taken once the lock is held, so a
 * run's gate that read the row before it judged slots before it (by the old row), and one reading later waits for
 * the commit (getScheduleRowSettled). The transaction's now() would be earlier than the lock.
 */
async function lockRow(c: pg.PoolClient, name: string): Promise<{ before: ScheduleRow; at: Date }> {
  const { rows } = await c.query(`select ${COLUMNS} from schedules where name = $1 for update`, [name]);
  if (!rows[0]) throw new UnknownScheduleError(name);
  const before = parseScheduleRow(rows[0]);
  const clock = await c.query('select clock_timestamp() as at');
  return { before, at: z.object({ at: z.date() }).parse(clock.rows[0]).at };
}

interface Audit {
  kind: ScheduleEventKind;
  name: string;
  before: ScheduleRow | null;
  after: ScheduleRow | null;
  by: string;
  note?: string | null;
  extra?: Record<string, unknown>;
}

/** What an audit row shows of a schedule: its spec and status (not the engine's bookkeeping). */
function shown(row: ScheduleRow | null): Record<string, unknown> | null {
  if (!row) return null;
  return { ...specOf(row), status: row.status, paused_reason: row.paused_reason };
}

async function audit(c: pg.PoolClient, a: Audit): Promise<void> {
  const current = a.after ?? a.before!;
  await recordScheduleEvent(c, {
    scheduleName: a.name,
    kind: a.kind,
    note: a.note ?? null,
    at: a.after ? new Date(a.after.updated_at) : undefined,
    details: {
      before: shown(a.before),
      after: shown(a.after),
      version: a.after ? a.after.version : a.before!.version,
      effective_from: a.after ? a.after.effective_from : null,
      by: a.by,
      ...a.extra,
    },
  });
  await c.query('select pg_notify($1, $2)', [SCHEDULES_CHANNEL, current.name]);
}

export interface ChangeResult {
  changed: boolean;
  schedule: ScheduleRow | null;
}

/** The spec's columns in the order createSchedule and updateSchedule write them (cron … note). */
function specColumns(spec: ScheduleSpec): unknown[] {
  return [
    spec.cron,
    spec.timezone,
    JSON.stringify(spec.payload),
    spec.catch_up,
    spec.catch_up_window,
    spec.overlap,
    spec.pause_after_failures,
    spec.start_at,
    spec.end_at,
    spec.note,
  ];
}

/**
 * Creates the schedule; throws ScheduleExistsError when the name is taken. `firedThrough`: slots at or before
 * it are never fired (default: the creation instant, so a new schedule starts with its next slot); an earlier
 * instant (a schedule taken over from DBOS's scheduler) makes the start-up catch-up fire the slots after it.
 */
export async function createSchedule(
  pool: ClientSource,
  spec: ScheduleSpec,
  by: ManagedBy,
  firedThrough?: Date,
): Promise<ScheduleRow> {
  return inTransaction(pool, async (c) => {
    const { rows } = await c.query(
      `insert into schedules (name, cron, timezone, payload, catch_up, catch_up_window, overlap, pause_after_failures,
                              start_at, end_at, note, managed_by, fired_through, effective_from)
       values ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, coalesce($13, now()), now())
       on conflict (name) do nothing
       returning ${COLUMNS}`,
      [spec.name, ...specColumns(spec), by, firedThrough ?? null],
    );
    if (!rows[0]) throw new ScheduleExistsError(spec.name);
    const after = parseScheduleRow(rows[0]);
    await audit(c, { kind: 'created', name: spec.name, before: null, after, by });
    return after;
  });
}

/**
 * Applies `patch`; a patch that changes nothing records nothing (`changed: false`).
 * `effectiveFrom` (start-up reconciliation only): the edit takes effect from this instant instead of the commit,
 * so the old spec's slots up to it (just caught up) and the new spec's after it (the engine fires them) leave no gap.
 */
export async function updateSchedule(
  pool: ClientSource,
  name: string,
  patch: SchedulePatch,
  by: ManagedBy,
  effectiveFrom?: Date,
): Promise<ChangeResult> {
  return inTransaction(pool, async (c) => {
    const { before, at } = await lockRow(c, name);
    const spec = applyPatch(specOf(before), patch);
    if (sameSpec(spec, specOf(before))) return { changed: false, schedule: before };
    const { rows } = await c.query(
      `update schedules set cron = $2, timezone = $3, payload = $4::jsonb, catch_up = $5, catch_up_window = $6, overlap = $7,
              pause_after_failures = $8, start_at = $9, end_at = $10, note = $11, managed_by = $12,
              version = version + 1, effective_from = coalesce($13::timestamptz, $14::timestamptz), updated_at = now(),
              -- slots of the old spec are never fired after this instant; the new spec starts after it (also
              -- when the old spec's next run was already started ahead of its slot: that run runs only if the
              -- new spec has its slot too, see EvaluationBatch.decide)
              fired_through = coalesce($13::timestamptz, $14::timestamptz)
        where name = $1 returning ${COLUMNS}`,
      [name, ...specColumns(spec), by, effectiveFrom ?? null, at],
    );
    const after = parseScheduleRow(rows[0]);
    await audit(c, { kind: 'updated', name, before, after, by });
    return { changed: true, schedule: after };
  });
}

/** Deletes the schedule: its firing stops; its runs and events stay in the history. */
export async function deleteSchedule(pool: ClientSource, name: string, by: string): Promise<ScheduleRow> {
  return inTransaction(pool, async (c) => {
    const { before } = await lockRow(c, name);
    await c.query('delete from schedules where name = $1', [name]);
    await audit(c, { kind: 'deleted', name, before, after: null, by });
    return before;
  });
}

export interface PauseRequest {
  note?: string | null;
  /** Who: `cli`, `api`, `operator`, `failure_policy` … */
  by: string;
  /** Extra facts for the event (e.g. `consecutive_failures`, `workflow_id`). */
  details?: Record<string, unknown>;
}

/**
 * The one pause path (operators and the failure policy alike). From the commit on, no slot calls the API:
 * the engines stop firing it at the NOTIFY, and every run's gate sees the status.
 */
export async function pauseScheduleRow(pool: ClientSource, name: string, req: PauseRequest): Promise<ChangeResult> {
  return inTransaction(pool, async (c) => {
    const { before, at } = await lockRow(c, name);
    if (before.status === 'PAUSED') return { changed: false, schedule: before };
    const { rows } = await c.query(
      `update schedules set status = 'PAUSED', paused_reason = $2, version = version + 1, effective_from = $3, updated_at = now()
        where name = $1 returning ${COLUMNS}`,
      [name, req.note ?? null, at],
    );
    const after = parseScheduleRow(rows[0]);
    await audit(c, { kind: 'paused', name, before, after, by: req.by, note: req.note ?? null, extra: req.details });
    return { changed: true, schedule: after };
  });
}

/** Resumes with the next slot: the slots of the pause are never caught up (`fired_through` moves to now). */
export async function resumeScheduleRow(pool: ClientSource, name: string, by: string): Promise<ChangeResult> {
  return inTransaction(pool, async (c) => {
    const { before, at } = await lockRow(c, name);
    if (before.status === 'ACTIVE') return { changed: false, schedule: before };
    const { rows } = await c.query(
      `update schedules set status = 'ACTIVE', paused_reason = null, version = version + 1, effective_from = $2::timestamptz,
              updated_at = now(), fired_through = greatest(coalesce(fired_through, $2::timestamptz), $2::timestamptz)
        where name = $1 returning ${COLUMNS}`,
      [name, at],
    );
    const after = parseScheduleRow(rows[0]);
    const paused = await c.query(
      `select at from schedule_events where schedule_name = $1 and kind = 'paused' order by at desc, id desc limit 1`,
      [name],
    );
    const pausedAt = (paused.rows[0] as { at: Date } | undefined)?.at;
    await audit(c, {
      kind: 'resumed',
      name,
      before,
      after,
      by,
      extra: pausedAt ? { paused_at: pausedAt.toISOString() } : {},
    });
    return { changed: true, schedule: after };
  });
}

/**
 * Moves each schedule's `fired_through` forward to its slot (never back) for the version that fired it: several
 * replicas fire the same slot, and a replica that has not heard of an edit yet must not move the new version's
 * mark. One statement for every slot started at one instant.
 */
export async function advanceFiredThrough(
  db: Queryable,
  fired: ReadonlyArray<{ name: string; version: number; slot: Date }>,
): Promise<void> {
  if (fired.length === 0) return;
  await db.query(
    `update schedules s set fired_through = v.slot
       from unnest($1::text[], $2::int[], $3::timestamptz[]) as v(name, version, slot)
      where s.name = v.name and s.version = v.version and (s.fired_through is null or s.fired_through < v.slot)`,
    [fired.map((f) => f.name), fired.map((f) => f.version), fired.map((f) => f.slot)],
  );
}

/** Compare-and-set of `fired_through` (the catch-up window skips old slots): only one replica wins. */
export async function replaceFiredThrough(
  db: Queryable,
  name: string,
  version: number,
  expected: Date,
  next: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update schedules set fired_through = $4 where name = $1 and version = $2 and fired_through = $3`,
    [name, version, expected, next],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * The instant from which `version` of the schedule (as it exists now, created at `createdAt`) was no longer
 * current: the effective_from of version + 1. Null when no later version is on record.
 */
export async function versionSupersededAt(
  db: Queryable,
  name: string,
  version: number,
  createdAt: Date,
): Promise<Date | null> {
  const { rows } = await db.query(
    `select (details ->> 'effective_from')::timestamptz as at from schedule_events
      where schedule_name = $1 and kind in ('updated', 'paused', 'resumed') and (details ->> 'version') = $2 and at >= $3
      order by id desc limit 1`,
    [name, String(version + 1), createdAt],
  );
  return (rows[0] as { at: Date } | undefined)?.at ?? null;
}
