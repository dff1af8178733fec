// An operator command's own code (what `xyra <command>` loads and runs) inside the test process, with the
// environment given: for a test that checks many argument errors of one command, where a real CLI process per
// case costs about a second of CPU. What it does not cover is cli.ts's dispatch, which turns a UsageError into
// exit 2 and any other error into exit 1: a test using this keeps one real `runCli` for each exit code it checks.
import { Writable } from 'node:stream';
import type { CliContext } from '../../src/cliCommand.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { opsCommands } from '../../src/ops/commands.js';

/** Runs `xyra <name> ...args`: its exit code when it returned one, or the error it threw (for cli.ts to map). */
export async function runOpsCommand(
  [name, ...args]: string[],
  env: Record<string, string>,
): Promise<{ code?: number; error?: unknown; stdout: string; logs: string }> {
  const command = name === undefined ? undefined : opsCommands[name];
  if (!command) throw new Error(`no operator command "${name}"`);
  let stdout = '';
  let logs = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs += chunk.toString();
      done();
    },
  });
  const ctx: CliContext = {
    config: loadConfig(env),
    logger: createLogger('warn', sink),
    out: (line) => (stdout += `${line}\n`),
    isTTY: false,
  };
  try {
    return { code: await (await command.load())(args, ctx), stdout, logs };
  } catch (error) {
    return { error, stdout, logs };
  }
}
