// The marker a backfilled slot's run receives as its scheduled-workflow context (a slot fired by the
// schedule gets the schedule's own context, null): the catch-up policy never skips such a run as missed.
import { z } from 'zod';

export interface BackfillContext {
  backfill: true;
}

export const BACKFILL_CONTEXT: BackfillContext = { backfill: true };

const backfillContextSchema = z.object({ backfill: z.literal(true) });

export function isBackfillContext(context: unknown): boolean {
  return backfillContextSchema.safeParse(context).success;
}
