#!/usr/bin/env -S node --max-semi-space-size=1
// The `xyra` command. Every sub-command reads the same environment as the service.
// The flag in the first line keeps V8's young generation small: the CLI's peak RSS (ingest streams a whole file
// through it) stays under 100 MB; the default semi-spaces alone added ~20 MB.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UsageError, type CliCommand, type CliContext } from './cliCommand.js';
import { loadConfig } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger, redact } from './logger.js';
import { opsCommands } from './ops/commands.js';
import { pipelineCommands } from './pipeline/commands.js';
import { releaseClientDatabases } from './runtime/databases.js';
import { runMigrations } from './runtime/migrateCommand.js';
import { interceptTerminalInterrupt, restoreTerminal } from './runtime/terminalInterrupt.js';
import { runStandaloneSimulator } from './simulator/server.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const coreCommands: Record<string, CliCommand> = {
  start: {
    summary: 'run the service (same as npm start)',
    usage: 'xyra start',
    run: () =>
      new Promise<number>((resolve) => {
        // The service runs in its own process group and gets each signal once, from us: a terminal's Ctrl-C
        // goes to the whole foreground group, and a second copy would read as "exit now" and skip the drain.
        // In a terminal we take Ctrl-C as input (so npm/npx above us see no SIGINT and exit with our code).
        const child = spawn(process.execPath, [path.join(here, 'main.js')], { stdio: 'inherit', detached: true });
        const forward = (s: NodeJS.Signals) => child.kill(s);
        process.on('SIGTERM', forward);
        process.on('SIGINT', forward);
        interceptTerminalInterrupt(() => forward('SIGINT'));
        child.on('exit', (code, signal) => {
          restoreTerminal(); // also lets our event loop end
          resolve(code ?? (signal ? 128 : 1));
        });
      }),
  },
  migrate: {
    summary: 'create/upgrade the app tables and the DBOS system database, then exit',
    usage: 'xyra migrate',
    run: async (_args, ctx) => {
      await runMigrations(ctx.config, ctx.logger);
      return 0;
    },
  },
  simulator: {
    summary: 'run the Xyra Analytics API simulator standalone',
    usage: 'xyra simulator [--port N] [--host H]',
    run: async (args, ctx) => {
      const { values } = parseArgs({
        args,
        options: { port: { type: 'string', default: '4010' }, host: { type: 'string', default: '0.0.0.0' } },
      });
      const port = Number(values.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new UsageError(`--port must be a port number, got "${values.port}"`);
      await runStandaloneSimulator(port, values.host, { token: ctx.config.xyraApiToken });
      return new Promise<number>(() => undefined); // runs until a signal stops it
    },
  },
};

const commands: Record<string, CliCommand> = { ...coreCommands, ...pipelineCommands, ...opsCommands };

function help(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'usage: xyra <command> [options]',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    "Run `xyra <command> --help` for a command's options.",
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`xyra: unknown command "${name}"\n${help()}\n`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: ${command.usage}\n  ${command.summary}\n`);
    return 0;
  }
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`xyra: invalid configuration: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
  const ctx: CliContext = {
    config,
    logger: createLogger(process.env.LOG_LEVEL ? config.logLevel : 'warn', 2),
    out: (line) => process.stdout.write(`${line}\n`),
    isTTY: Boolean(process.stdout.isTTY),
  };
  try {
    return await command.run(args, ctx);
  } catch (e) {
    if (
      e instanceof UsageError ||
      (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))
    ) {
      process.stderr.write(`xyra ${name}: ${e.message}\nusage: ${command.usage}\n`);
      return 2;
    }
    process.stderr.write(`xyra ${name}: ${redact(e instanceof Error ? e.message : String(e))}\n`);
    return 1;
  } finally {
    // This command no longer uses the embedded Postgres; if the services left meanwhile, it stops now.
    await releaseClientDatabases().catch((e: unknown) =>
      ctx.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'releasing the embedded Postgres failed'),
    );
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`xyra: ${redact(e instanceof Error ? e.message : String(e))}\n`);
    process.exitCode = 1;
  },
);
