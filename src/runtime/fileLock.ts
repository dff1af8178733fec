// A small cross-process lock on a file, for start-up steps that must not race between processes of one
// directory (two replicas starting the embedded Postgres at the same moment). A lock whose holder died is
// taken over, so a SIGKILLed run never wedges the next start.
import fs from 'node:fs/promises';
import { StartupAbortedError } from '../errors.js';

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `signal`: stop waiting for the lock when start-up is interrupted. */
export async function withFileLock<T>(file: string, fn: () => Promise<T>, signal?: AbortSignal, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await fs.open(file, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number.parseInt(await fs.readFile(file, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(holder) && holder > 0 && !processAlive(holder)) {
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
    await fs.rm(file, { force: true });
  }
}
