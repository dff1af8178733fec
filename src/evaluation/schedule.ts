// The batch queue, registered after launch: catch-up runs are enqueued on it (under BATCH_CATCH_UP=all one at a
// time). Schedules themselves are no longer registered with DBOS's scheduler: our engine fires every slot
// (src/evaluation/engine.ts; docs/design.md, "One engine"). A DBOS schedule row left by an older version is
// taken over and deleted before launch (legacySchedule.ts), so DBOS's scheduler never fires a slot of ours.
import { DBOS } from '@dbos-inc/dbos-sdk';
import type { Config } from '../config.js';
import { BATCH_QUEUE } from './slotContext.js';

export { BATCH_QUEUE };

export async function registerBatchQueue(config: Config): Promise<void> {
  await DBOS.registerQueue(BATCH_QUEUE, {
    minPollingIntervalMs: config.batch.queuePollMs,
    globalConcurrency: config.batch.catchUp === 'all' ? 1 : undefined,
    onConflict: 'always_update',
  });
}
