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
    super(`EXECUTOR_ID "${executorId}" is already in use by a running replica; give each replica its own EXECUTOR_ID`);
    this.name = 'ExecutorConflictError';
  }
}

/** The schedule has no row in the system database yet: no service has started against it. */
export class ScheduleNotFoundError extends Error {
  constructor(readonly scheduleName: string) {
    super(`schedule "${scheduleName}" not found: has the service been started against this database?`);
    this.name = 'ScheduleNotFoundError';
  }
}

/** A SIGTERM/SIGINT arrived before the service was ready: start-up stopped and undid what it had started. */
export class StartupAbortedError extends Error {
  constructor() {
    super('start-up interrupted by a signal');
    this.name = 'StartupAbortedError';
  }
}

/** A bad request to the service's HTTP API (e.g. `/api/runs?limit=abc`): answered with this status and message. */
export class ApiRequestError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiRequestError';
  }
}
