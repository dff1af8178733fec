// The code of `xyra start`, `xyra migrate` and `xyra simulator` (cli.ts lists them and loads this on demand).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UsageError, type CliContext } from './cliCommand.js';
import { runMigrations } from './runtime/migrateCommand.js';
import { interceptTerminalInterrupt, restoreTerminal } from './runtime/terminalInterrupt.js';
import { runStandaloneSimulator } from './simulator/server.js';

const here = path.dirname(fileURLToPath(import.meta.url));

export function start(): Promise<number> {
  return new Promise<number>((resolve) => {
    // The service runs in its own process group and gets each signal once, from us: a terminal's Ctrl-C
    // goes to the whole foreground group, and a second copy would read as "exit now" and skip the drain.
    // In a terminal we take Ctrl-C as input (so npm/npx above us see no SIGINT and exit with our code).
    // The V8 flags of dbos-config.yaml's start command (why: docs/design.md), so the service runs as deployed.
    const flags = ['--max-semi-space-size=2', '--max-old-space-size=512'];
    const child = spawn(process.execPath, [...flags, path.join(here, 'main.js')], { stdio: 'inherit', detached: true });
    const forward = (s: NodeJS.Signals) => child.kill(s);
    process.on('SIGTERM', forward);
    process.on('SIGINT', forward);
    interceptTerminalInterrupt(() => forward('SIGINT'));
    child.on('exit', (code, signal) => {
      restoreTerminal(); // also lets our event loop end
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

export async function migrate(_args: string[], ctx: CliContext): Promise<number> {
  await runMigrations(ctx.config, ctx.logger);
  return 0;
}

export async function simulator(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { port: { type: 'string', default: '4010' }, host: { type: 'string', default: '0.0.0.0' } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port must be a port number, got "${values.port}"`);
  await runStandaloneSimulator(port, values.host, { token: ctx.config.xyraApiToken });
  return new Promise<number>(() => undefined); // runs until a signal stops it
}
