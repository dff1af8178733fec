// What a schedule is (ARCHITECTURE.md, "Contract: schedules as data"): the fields an operator writes, their
// validation and defaults. One zod schema for every boundary (CLI options, `/api/schedules` bodies, `apply`
// files, the BATCH_* variables), so a bad field gets the same answer everywhere: its name and what is wrong.
import { z } from 'zod';
import { parseDuration, type CatchUpPolicy, type Config } from '../config.js';
import { CronSchedule } from './cron.js';
import { validateCron } from './cronExpression.js';

export const SCHEDULE_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const OVERLAP_POLICIES = ['skip', 'buffer_one', 'allow_all'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];
export const CATCH_UP_POLICIES = ['latest', 'all', 'none'] as const;
export const MANAGED_BY = ['env', 'api', 'cli', 'file'] as const;
export type ManagedBy = (typeof MANAGED_BY)[number];
/** The serialized payload may be at most this large. */
export const MAX_PAYLOAD_BYTES = 16 * 1024;
/** The run's own fields: never taken from a payload. */
export const RESERVED_PAYLOAD_KEYS = ['workflow_id', 'triggered_at'] as const;

/** A field of a schedule is invalid: `field` names it (the HTTP answer's `field`, the CLI's option). */
export class ScheduleValidationError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'ScheduleValidationError';
  }
}

/** The fields an operator sets; everything else about a schedule is read-only. */
export interface ScheduleSpec {
  name: string;
  cron: string;
  timezone: string;
  payload: Record<string, unknown>;
  catch_up: CatchUpPolicy;
  catch_up_window: string;
  overlap: OverlapPolicy;
  pause_after_failures: number;
  start_at: string | null;
  end_at: string | null;
  note: string | null;
}
export const SPEC_FIELDS = [
  'name',
  'cron',
  'timezone',
  'payload',
  'catch_up',
  'catch_up_window',
  'overlap',
  'pause_after_failures',
  'start_at',
  'end_at',
  'note',
] as const satisfies ReadonlyArray<keyof ScheduleSpec>;
/** Read-only fields a client may send back (e.g. `schedule list --json` saved as an apply file): ignored. */
export const READ_ONLY_FIELDS = [
  'status',
  'paused_reason',
  'version',
  'created_at',
  'updated_at',
  'managed_by',
  'next_slots',
  'last_run',
  'consecutive_failures',
  'effective_from',
] as const;

/** Defaults from the environment (BATCH_TIMEZONE, BATCH_CATCH_UP, BATCH_CATCH_UP_WINDOW, BATCH_PAUSE_AFTER_FAILURES). */
export interface ScheduleDefaults {
  timezone: string;
  catchUp: CatchUpPolicy;
  catchUpWindow: string;
  pauseAfterFailures: number;
}

const name = z.string().regex(SCHEDULE_NAME_PATTERN, { message: 'must match ^[a-z0-9][a-z0-9-]{0,62}$' });
const cron = z.string().superRefine((v, ctx) => {
  try {
    validateCron(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `invalid cron "${v}": ${(e as Error).message}` });
  }
});
const timezone = z.string().superRefine((v, ctx) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: v });
    if (v.trim() === '') throw new Error('empty');
  } catch {
    ctx.addIssue({ code: 'custom', message: `unknown IANA time zone "${v}"` });
  }
});
const payload = z.record(z.string(), z.unknown()).superRefine((v, ctx) => {
  const bytes = Buffer.byteLength(JSON.stringify(v), 'utf8');
  if (bytes > MAX_PAYLOAD_BYTES)
    ctx.addIssue({ code: 'custom', message: `must be at most ${MAX_PAYLOAD_BYTES} bytes as JSON, got ${bytes}` });
  for (const key of RESERVED_PAYLOAD_KEYS) {
    if (key in v) ctx.addIssue({ code: 'custom', message: `must not set "${key}": it is the run's own` });
  }
  const limit = v.batch_size_limit;
  if (limit !== undefined && !(Number.isInteger(limit) && (limit as number) >= 1)) {
    ctx.addIssue({ code: 'custom', message: 'batch_size_limit must be an integer >= 1' });
  }
});
const catchUpWindow = z.string().superRefine((v, ctx) => {
  try {
    parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});
const instant = z
  .string()
  .nullable()
  .superRefine((v, ctx) => {
    if (v !== null && (!/^\d{4}-\d\d-\d\dT/.test(v) || Number.isNaN(Date.parse(v)))) {
      ctx.addIssue({ code: 'custom', message: `expected an ISO-8601 instant, got "${v}"` });
    }
  })
  .transform((v) => (v === null ? null : new Date(v).toISOString()));

const fieldSchemas = {
  name,
  cron,
  timezone,
  payload,
  catch_up: z.enum(CATCH_UP_POLICIES, { message: `must be one of ${CATCH_UP_POLICIES.join(', ')}` }),
  catch_up_window: catchUpWindow,
  overlap: z.enum(OVERLAP_POLICIES, { message: `must be one of ${OVERLAP_POLICIES.join(', ')}` }),
  pause_after_failures: z.number().int().min(0),
  start_at: instant,
  end_at: instant,
  note: z.string().max(2000).nullable(),
};

/** The first issue of a failed parse, as a ScheduleValidationError naming the field. */
function toValidationError(error: z.ZodError): ScheduleValidationError {
  const issue = error.issues[0]!;
  const field = issue.path.length > 0 ? String(issue.path[0]) : 'body';
  if (issue.code === 'unrecognized_keys') return new ScheduleValidationError(String(issue.keys[0]), 'unknown field');
  return new ScheduleValidationError(field, issue.message);
}

const patchSchema = z.strictObject(
  Object.fromEntries(SPEC_FIELDS.map((f) => [f, fieldSchemas[f].optional()])) as {
    [K in keyof typeof fieldSchemas]: z.ZodOptional<(typeof fieldSchemas)[K]>;
  },
);
export type SchedulePatch = Partial<ScheduleSpec>;

function withoutReadOnly(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const copy: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const f of READ_ONLY_FIELDS) delete copy[f];
  return copy;
}

/** Validates a partial schedule (an update); throws ScheduleValidationError. */
export function parseSchedulePatch(raw: unknown): SchedulePatch {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ScheduleValidationError('body', 'expected a JSON object');
  const parsed = patchSchema.safeParse(withoutReadOnly(raw));
  if (!parsed.success) throw toValidationError(parsed.error);
  return parsed.data;
}

/** A whole schedule from `raw` with the environment's defaults for what it leaves out; throws ScheduleValidationError. */
export function parseScheduleSpec(raw: unknown, defaults: ScheduleDefaults): ScheduleSpec {
  const patch = parseSchedulePatch(raw);
  if (patch.name === undefined) throw new ScheduleValidationError('name', 'required');
  if (patch.cron === undefined) throw new ScheduleValidationError('cron', 'required');
  const spec: ScheduleSpec = {
    name: patch.name,
    cron: patch.cron,
    timezone: patch.timezone ?? defaults.timezone,
    payload: patch.payload ?? {},
    catch_up: patch.catch_up ?? defaults.catchUp,
    catch_up_window: patch.catch_up_window ?? defaults.catchUpWindow,
    overlap: patch.overlap ?? 'skip',
    pause_after_failures: patch.pause_after_failures ?? defaults.pauseAfterFailures,
    start_at: patch.start_at ?? null,
    end_at: patch.end_at ?? null,
    note: patch.note ?? null,
  };
  checkWhole(spec);
  return spec;
}

/** Rules across fields, checked on the whole spec (after an update is merged too). */
export function checkWhole(spec: ScheduleSpec): void {
  if (spec.start_at && spec.end_at && Date.parse(spec.end_at) <= Date.parse(spec.start_at)) {
    throw new ScheduleValidationError('end_at', 'must be after start_at');
  }
}

/** The spec with `patch` applied (the name never changes). */
export function applyPatch(spec: ScheduleSpec, patch: SchedulePatch): ScheduleSpec {
  const merged: ScheduleSpec = { ...spec };
  for (const f of SPEC_FIELDS) {
    if (f === 'name' || patch[f] === undefined) continue;
    (merged as unknown as Record<string, unknown>)[f] = patch[f];
  }
  checkWhole(merged);
  return merged;
}

/** Canonical JSON of a value (sorted keys): equal specs compare equal whatever the key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function sameSpec(a: ScheduleSpec, b: ScheduleSpec): boolean {
  return SPEC_FIELDS.every((f) => canonicalJson(a[f]) === canonicalJson(b[f]));
}

/** The spec's slots: its cron in its zone, bounded by start_at/end_at. */
export class SpecSlots {
  readonly cron: CronSchedule;
  private readonly startMs: number;
  private readonly endMs: number;

  constructor(spec: Pick<ScheduleSpec, 'cron' | 'timezone' | 'start_at' | 'end_at'>) {
    this.cron = new CronSchedule(spec.cron, spec.timezone);
    this.startMs = spec.start_at ? Date.parse(spec.start_at) : -Infinity;
    this.endMs = spec.end_at ? Date.parse(spec.end_at) : Infinity;
  }

  /** The first slot strictly after `after`, or null when none is left (past end_at). */
  next(after: Date): Date | null {
    const from = Math.max(after.getTime(), this.startMs - 1);
    const slot = this.cron.next(new Date(from));
    return slot.getTime() > this.endMs ? null : slot;
  }

  nextSlots(after: Date, count: number): Date[] {
    const out: Date[] = [];
    let cursor: Date | null = after;
    while (out.length < count && (cursor = this.next(cursor)) !== null) out.push(cursor);
    return out;
  }

  /** Slots in (after, upTo], at most `limit`. */
  between(after: Date, upTo: Date, limit = Number.MAX_SAFE_INTEGER): Date[] {
    const out: Date[] = [];
    let cursor: Date | null = after;
    while (out.length < limit && (cursor = this.next(cursor)) !== null && cursor.getTime() <= upTo.getTime())
      out.push(cursor);
    return out;
  }

  isSlot(at: Date): boolean {
    return this.next(new Date(at.getTime() - 1))?.getTime() === at.getTime();
  }
}

/** A new schedule's defaults are the environment's (BATCH_*): what a create or an apply leaves out. */
export function scheduleDefaults(config: Pick<Config, 'batch'>): ScheduleDefaults {
  return {
    timezone: config.batch.timezone,
    catchUp: config.batch.catchUp,
    catchUpWindow: config.batch.catchUpWindow,
    pauseAfterFailures: config.batch.pauseAfterFailures,
  };
}
