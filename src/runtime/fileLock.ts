// A small cross-process lock on a file, for start-up steps that must not race between processes of one
// directory (two replicas starting the embedded Postgres at the same moment). A lock whose holder died is
// taken over, so a SIGKILLed run never wedges the next start.
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { StartupAbortedError } from '../errors.js';

/** Lock files this process holds right now: a lock naming our own PID that is not among them is stale. */
const held = new Set<string>();

/** A process's start time in clock ticks since boot (/proc/<pid>/stat field 22); undefined without /proc. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * Whether the lock file's holder (`<pid> <start>`) is gone. PIDs are reused: in a fresh container the dead
 * holder's PID is often our own (a stale lock then made start-up wait 120 s and fail), or another process's;
 * the recorded start time tells them apart.
 */
function holderGone(content: string, file: string): boolean {
  const [pidText, start] = content.trim().split(' ');
  const pid = Number.parseInt(pidText ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return false; // being written right now, or garbage: see the age check
  if (pid === process.pid) return !held.has(file);
  if (!processAlive(pid)) return true;
  const now = processStart(pid);
  return start !== undefined && now !== undefined && now !== start;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `signal`: stop waiting for the lock when start-up is interrupted. */
export async function withFileLock<T>(
  file: string,
  fn: () => Promise<T>,
  signal?: AbortSignal,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await fs.open(file, 'wx', 0o600);
      await handle.writeFile(`${process.pid} ${processStart(process.pid) ?? ''}`.trim());
      await handle.close();
      held.add(file);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const content = await fs.readFile(file, 'utf8').catch(() => '');
      const holder = Number.parseInt(content, 10);
      // An unreadable holder older than a few seconds was never finished (killed between create and write).
      const age = await fs.stat(file).then(
        (st) => Date.now() - st.mtimeMs,
        () => 0,
      );
      if (holderGone(content, file) || (!(holder > 0) && age > 5_000)) {
        await fs.rm(file, { force: true });
        continue;
      }
      if (signal?.aborted) throw new StartupAbortedError();
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${file} (held by pid ${holder})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    held.delete(file);
    await fs.rm(file, { force: true });
  }
}
