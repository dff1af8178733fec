// The slot firing behind the execution fence (runtime/executionFence.ts): it stops when the fence closes (no
// slot is started while this replica's claim is unconfirmed) and starts again when it opens. Slots of the
// last RECENT_MS that fell while it was closed (a dropped connection re-taken at the next beat) are fired at
// once with their own IDs, as they would have been. Older ones (a real outage) are DBOS's: its scheduler
// loop waits the outage out and then enqueues every slot it missed on the batch queue (so BATCH_CATCH_UP=all
// still runs them one at a time), and each run applies the catch-up policy. Either way a slot's ID is fixed:
// whoever inserts its row first runs it, the other does nothing.
// Kept outside firing.ts/slotFiring.ts so the firing engine only has to offer start and stop.
import type { ExecutionFence } from '../runtime/executionFence.js';
import { readScheduleRow } from '../runtime/dbosInternals.js';
import { fireSlot, startSlotFiring, type FiringDeps } from './firing.js';
import { SCHEDULE_NAME } from './evaluationBatch.js';

/** Missed slots this recent are fired here when the fence opens; older ones are left to DBOS's loop. */
const RECENT_MS = 2_000;

export function fireBehindFence(fence: ExecutionFence, deps: FiringDeps): { stop(): Promise<void> } {
  let firing: { stop(): Promise<void> } | undefined = startSlotFiring(deps);
  let closedAt: Date | undefined;
  let changing: Promise<void> = Promise.resolve();
  let stopped = false;

  const catchUp = async (from: Date, to: Date) => {
    const slots = deps.schedule.slotsBetween(from, new Date(to.getTime() + 1));
    if (slots.length === 0) return;
    const paused = (await readScheduleRow(deps.systemPool, SCHEDULE_NAME))?.status === 'PAUSED';
    for (const slot of slots) {
      if (stopped || !fence.isOpen()) return; // closed again: the next opening catches up from its own close
      await fireSlot(deps, slot, paused);
    }
    deps.logger.info({ slots: slots.length, from: slots[0]!.toISOString(), to: slots.at(-1)!.toISOString() }, 'fired the slots that fell while the fence was closed');
  };

  fence.onChange((open) => {
    if (!open) closedAt ??= new Date();
    changing = changing.then(async () => {
      await firing?.stop();
      firing = undefined;
      if (!open || stopped || !fence.isOpen()) return;
      const from = closedAt;
      closedAt = undefined;
      const startedAt = new Date();
      firing = startSlotFiring(deps); // every slot after startedAt
      if (from) {
        await catchUp(new Date(Math.max(from.getTime(), startedAt.getTime() - RECENT_MS)), startedAt).catch((e: unknown) =>
          deps.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not fire the slots that fell while fenced; DBOS scheduler fires them'),
        );
      }
    });
  });

  return {
    async stop() {
      stopped = true; // no new slot starts during the drain
      await changing;
      await firing?.stop();
    },
  };
}
