#!/usr/bin/env -S node --max-semi-space-size=1 --max-old-space-size=512
// The `xyra` command. Every sub-command reads the same environment as the service.
// The flags in the first line keep the CLI's peak RSS under 100 MB while `xyra ingest` streams a whole file: a small
// young generation (the default semi-spaces alone added ~20 MB), and an old-generation cap whose only effect at
// these sizes is that V8 collects sooner (it sizes its first collection thresholds from the cap: with the default
// 4 GB cap, 1,000,000 records peaked at 138-167 MB of mostly dead text and buffers; with 512 MB, at 96 MB).
// Only the dispatcher is loaded up front: each command's code (and its module graph) is imported when it runs,
// so `xyra --help` and `xyra ingest` carry no other command's modules (see cliCommand.ts).
import { UsageError, type CliCommand, type CliContext } from './cliCommand.js';
import { ConfigError } from './errors.js';
import { opsCommands } from './ops/commands.js';
import { pipelineCommands } from './pipeline/commands.js';

const coreCommands: Record<string, CliCommand> = {
  start: {
    summary: 'run the service (same as npm start)',
    usage: 'xyra start',
    load: async () => (await import('./coreCommands.js')).start,
  },
  migrate: {
    summary: 'create/upgrade the app tables and the DBOS system database, then exit',
    usage: 'xyra migrate',
    load: async () => (await import('./coreCommands.js')).migrate,
  },
  simulator: {
    summary: 'run the Xyra Analytics API simulator standalone',
    usage: 'xyra simulator [--port N] [--host H]',
    load: async () => (await import('./coreCommands.js')).simulator,
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
  const [{ loadConfig }, { createLogger, redact }, { releaseClientDatabases }] = await Promise.all([
    import('./config.js'),
    import('./logger.js'),
    import('./runtime/databases.js'),
  ]);
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
    return await (
      await command.load()
    )(args, ctx);
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
  async (e: unknown) => {
    const { redact } = await import('./logger.js');
    process.stderr.write(`xyra: ${redact(e instanceof Error ? e.message : String(e))}\n`);
    process.exitCode = 1;
  },
);
