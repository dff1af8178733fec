// A database filled by real batch runs: a service process on a 2-second cron against an in-process
// simulator, with faults injected so that every outcome the operator commands report occurs at least
// once (retried-then-completed, failed, failed after exhausted retries, skipped in progress).
import { XyraSimulator, type SimulatorFault } from '../../src/simulator/server.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './database.js';
import { isReady, READY_TIMEOUT_MS, startServiceProcess, type LogLine, type ServiceProcess } from './serviceProcess.js';

export interface PopulatedDatabase {
  appUrl: string;
  systemUrl: string;
  /** Environment for the CLI and further service processes against the same databases. */
  env: Record<string, string>;
  simulator: XyraSimulator;
  service: ServiceProcess;
}

export const FAST_CRON = '*/2 * * * * *';

/** `extraEnv` adds or overrides service settings (e.g. pipeline retry budgets) for one test file. */
export async function startPopulatedService(
  label: string,
  extraEnv: Record<string, string> = {},
): Promise<PopulatedDatabase> {
  const simulator = new XyraSimulator();
  const apiUrl = await simulator.start();
  const appUrl = await createMigratedTestDatabase(label);
  const env = {
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    BATCH_CRON: FAST_CRON,
    XYRA_MAX_ATTEMPTS: '3',
    XYRA_BACKOFF_BASE_MS: '50',
    XYRA_BACKOFF_MAX_MS: '200',
    XYRA_TIMEOUT_MS: '3000',
    EXECUTOR_ID: `ops-${label}`,
    SHUTDOWN_TIMEOUT_MS: '5000',
    // The pipeline's error path, so `errors` gets real rows when a test ingests a dataset.
    PIPELINE_FAIL_IDS: '50',
    ...extraEnv,
  };
  const service = startServiceProcess(env);
  await service.waitForLog(isReady, READY_TIMEOUT_MS); // generous: a loaded machine can take tens of seconds to start a process
  return { appUrl, systemUrl: systemDatabaseUrlOf(appUrl), env, simulator, service };
}

const outcome =
  (msg: string, pred: (l: LogLine) => boolean = () => true) =>
  (l: LogLine) =>
    l.msg === msg && pred(l);

/** Injects one fault and waits for the run it produces; returns that run's log line. */
export async function runWithFault(
  db: PopulatedDatabase,
  fault: SimulatorFault,
  expect: string,
  pred?: (l: LogLine) => boolean,
): Promise<LogLine> {
  const seen = db.service.logs.length;
  db.simulator.inject(fault);
  const matcher = outcome(expect, pred);
  return db.service.waitForLog((l) => db.service.logs.indexOf(l) >= seen && matcher(l), 20_000);
}

/** The standard mix: each outcome once, then a plain completed run. */
export async function produceOutcomeMix(db: PopulatedDatabase): Promise<void> {
  await runWithFault(db, { type: 'status', status: 503, count: 1 }, 'batch completed');
  await runWithFault(db, { type: 'status', status: 400, count: 1 }, 'batch failed');
  // The API's skip, not one of ours: an overlap-guard skip of a cron run (a retried run still in progress) carries
  // the same message, and matching it would leave the fault queued for a later run (say, the manual trigger's).
  await runWithFault(db, { type: 'inProgress' }, 'batch skipped', (l) => l.skippedReason === undefined);
  await runWithFault(db, { type: 'status', status: 503, count: 3 }, 'batch failed', (l) =>
    String(l.error).includes('gave up'),
  );
  const seen = db.service.logs.length;
  await db.service.waitForLog((l) => db.service.logs.indexOf(l) >= seen && l.msg === 'batch completed', 20_000);
}

/** The statuses a run's `batch_evaluation_status` event took, in the order it set them. */
export async function eventStatuses(appUrl: string, workflowId: string): Promise<string[]> {
  const rows = await query<{ value: string }>(
    systemDatabaseUrlOf(appUrl),
    `select value from dbos.workflow_events_history where workflow_uuid = $1 and key = 'batch_evaluation_status' order by function_id`,
    [workflowId],
  );
  return rows.map((r) => (JSON.parse(r.value) as { json: { status: string } }).json.status);
}
