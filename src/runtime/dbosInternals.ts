// The one module that reaches into DBOS internals (`@dbos-inc/dbos-sdk/internal/...`) or its private
// formats. Everything else imports from here, so an SDK upgrade that moves or changes them breaks in one
// place, and test/dbosInternals.test.ts pins the behaviour we rely on.
export { TimeMatcher, validateCrontab } from '@dbos-inc/dbos-sdk/internal/scheduler/crontab';
/**
 * DBOS's own queue, polled by every launched process with no concurrency limit (DBOS's scheduler uses it for
 * schedules without a queue). Backfill requests go there: on the batch queue, whose concurrency is 1 under
 * BATCH_CATCH_UP=all, a request waiting for a slot run enqueued on that same queue would wait forever.
 */
export { INTERNAL_QUEUE_NAME as DBOS_INTERNAL_QUEUE } from '@dbos-inc/dbos-sdk/internal/utils';
