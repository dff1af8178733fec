// Typed errors of the service, in one place (as dbos-transact-ts does), so callers can tell them apart.

/** An environment variable has an invalid value. Its message is the one line printed before exit 2. */
export class ConfigError extends Error {
  readonly exitCode = 2;
  constructor(
    readonly variable: string,
    readonly reason: string,
  ) {
    super(`${variable}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** A dataset file cannot be read as JSON records at all (not a per-record problem). */
export class DatasetError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'DatasetError';
  }
}

/** Another live process already runs with this executor ID on the same system database. */
export class ExecutorConflictError extends Error {
  constructor(readonly executorId: string) {
    super(
      `EXECUTOR_ID "${executorId}" is already in use by a running replica; give each replica its own EXECUTOR_ID`,
    );
    this.name = 'ExecutorConflictError';
  }
}

/** The batch schedule has no row yet: no service has been started against this system database. */
export class ScheduleNotFoundError extends Error {
  constructor(readonly scheduleName: string) {
    super(`schedule "${scheduleName}" not found: has the service been started against this database?`);
    this.name = 'ScheduleNotFoundError';
  }
}
