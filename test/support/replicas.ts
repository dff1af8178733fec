// Replicas for failover and fencing tests: real service processes with a short FAILOVER_AFTER against one
// simulator, each killed after the test that started it (SIGKILL: a replica under test may be hung or fenced on
// purpose). A test that fails half-way must not leave its replicas firing into the next test's simulator.
import { afterAll, afterEach, beforeAll } from 'vitest';
import { XyraSimulator } from '../../src/simulator/server.js';
import { startServiceProcess, type LogLine, type ServiceProcess } from './serviceProcess.js';

export const FAILOVER_AFTER_MS = 3_000;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The log line of a replica that adopted a dead executor's workflows. */
export const tookOver = (l: LogLine) => typeof l.msg === 'string' && l.msg.startsWith('failover: took over');

/** Registers the file's hooks; `start` launches a replica that the end of its test kills. */
export function replicaFixture(): { simulator: XyraSimulator; start(env: Record<string, string>): ServiceProcess } {
  const simulator = new XyraSimulator();
  const running: ServiceProcess[] = [];
  beforeAll(async () => {
    await simulator.start();
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.stop('SIGKILL')));
  });
  afterAll(async () => {
    await simulator.stop();
  });
  return {
    simulator,
    start(env) {
      const p = startServiceProcess({ FAILOVER_AFTER: `${FAILOVER_AFTER_MS}ms`, XYRA_BACKOFF_BASE_MS: '50', ...env });
      running.push(p);
      return p;
    },
  };
}
