// What a batch run knows about where it comes from, passed as the workflow's second input (DBOS's
// "scheduled-workflow context" position): the schedule's name and the spec version whose slot it is. The run
// checks the version against the schedule's row before calling the API (a replica that has not heard of an
// edit yet cannot run the old spec's slot). Also: the slot workflow IDs, the one definition of them.
import { z } from 'zod';

export const DEFAULT_SCHEDULE = 'evaluation-batch';
/** The DBOS queue every batch run goes through (its name is the default schedule's, for history). */
export const BATCH_QUEUE = 'evaluation-batch';

/**
 * A slot's run may be started up to this long before its slot (the engine's lead grows with the number of slots
 * due at one instant); the run waits for the slot itself before it records its actual start.
 */
export const MAX_FIRE_LEAD_MS = 5_000;

const slotContextSchema = z.object({
  schedule: z.string(),
  /** The spec version that fired the slot; absent for manual and backfilled runs (they run the current one). */
  version: z.number().int().optional(),
  /** Caught up after downtime: the schedule's catch-up policy decides whether it still runs. */
  catchUp: z.boolean().optional(),
  backfill: z.literal(true).optional(),
  manual: z.literal(true).optional(),
});
export type SlotContext = z.infer<typeof slotContextSchema>;

/** `sched-<name>-<ISO slot>`: every replica gives a slot the same ID, so it runs once. */
export function slotWorkflowIdOf(schedule: string, slot: Date): string {
  return `sched-${schedule}-${slot.toISOString()}`;
}

/** `sched-<name>-trigger-<ISO>`: a manual run outside the slot sequence. */
export function manualWorkflowIdOf(schedule: string, at: Date): string {
  return `sched-${schedule}-trigger-${at.toISOString()}`;
}

/**
 * Matches the IDs of one schedule's runs (slots and manual ones), never another schedule's (`a` vs `a-b`);
 * a POSIX/JS regex (Postgres `~` and RegExp alike). Runs started under an ID that is no schedule's (tests, tools)
 * count as the default schedule's, as readSlotContext reads them.
 */
export function runIdPattern(schedule: string): string {
  const own = `^sched-${schedule}-(trigger-)?[0-9]{4}-[0-9]{2}-[0-9]{2}T`;
  return schedule === DEFAULT_SCHEDULE ? `${own}|^(?!sched-)` : own;
}

/**
 * The context a run was started with. Runs fired before schedules were data (context null, or the old
 * `{backfill: true}`) belong to the schedule named in their workflow ID.
 */
export function readSlotContext(context: unknown, workflowId: string): SlotContext {
  const parsed = slotContextSchema.safeParse(context);
  if (parsed.success) return parsed.data;
  const backfill = z.object({ backfill: z.literal(true) }).safeParse(context).success;
  const m = /^sched-([a-z0-9][a-z0-9-]*?)-(trigger-)?\d{4}-\d\d-\d\dT/.exec(workflowId);
  return {
    schedule: m?.[1] ?? DEFAULT_SCHEDULE,
    ...(backfill ? { backfill: true as const } : {}),
    ...(m?.[2] ? { manual: true as const } : {}),
  };
}
