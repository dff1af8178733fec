// The one module that reaches into DBOS internals (`@dbos-inc/dbos-sdk/internal/...`) or its private
// formats. Everything else imports from here, so an SDK upgrade that moves or changes them breaks in one
// place, and test/dbosInternals.test.ts pins the behaviour we rely on.
export { TimeMatcher, validateCrontab } from '@dbos-inc/dbos-sdk/internal/scheduler/crontab';
