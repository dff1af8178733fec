// A real service process (the compiled dist/src/main.js) for tests that need restarts, SIGKILL or
// several replicas. `npm test` builds first, so dist/ matches the source under test.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export interface ServiceProcess {
  child: ChildProcess;
  logs: LogLine[];
  /** Raw stdout+stderr text, for asserting what was (not) printed. */
  output(): string;
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Send a signal and wait for the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const MAIN = path.resolve('dist/src/main.js');
const CLI = path.resolve('dist/src/cli.js');

/** Every service process a test file started that has not exited yet. */
const liveServices = new Set<ChildProcess>();

/**
 * Kills what a test file left running (test/support/leftoverServices.ts calls it after every file): a file whose
 * `beforeAll` failed before it kept its handle never stops its services itself (one was seen running 85 minutes
 * after its file had ended, holding its databases and a port).
 */
export function killLeftoverServices(): void {
  for (const child of liveServices) child.kill('SIGKILL');
}

export function startServiceProcess(
  env: Record<string, string>,
  script: string = MAIN,
  args: string[] = [],
): ServiceProcess {
  const child = spawn(process.execPath, [script, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'info', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveServices.add(child);
  child.once('exit', () => liveServices.delete(child));
  const logs: LogLine[] = [];
  let raw = '';
  const waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  const onLine = (line: string) => {
    raw += `${line}\n`;
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      parsed = { msg: line, level: 'raw' };
    }
    logs.push(parsed);
    for (const w of [...waiters]) {
      if (w.pred(parsed)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  };
  readline.createInterface({ input: child.stdout }).on('line', onLine);
  readline.createInterface({ input: child.stderr }).on('line', onLine);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    logs,
    exited,
    output: () => raw,
    waitForLog(pred, timeoutMs = 30_000) {
      const found = logs.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise<LogLine>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for a log line; last lines:\n${raw.split('\n').slice(-15).join('\n')}`,
            ),
          );
        }, timeoutMs);
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exited.then(() => {
          clearTimeout(timer);
          reject(
            new Error(`service exited while waiting for a log line; output:\n${raw.split('\n').slice(-25).join('\n')}`),
          );
        });
      });
    },
    async stop(signal = 'SIGTERM', timeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const { code } = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Run the `xyra` CLI to completion. */
export async function runCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export const isReady = (l: LogLine) => l.msg === 'xyra-scheduler ready';
/**
 * How long a test waits for a service to be ready. Generous: on a loaded 2-core machine (other test files, other
 * work) a start that takes 2 s alone has taken over 30 s, most of it DBOS's system-database migrations.
 */
export const READY_TIMEOUT_MS = 120_000;
