// Operator commands: history, stats, errors, trigger, schedule (filled in by the operations work).
import type { CliCommand } from '../cliCommand.js';

export const opsCommands: Record<string, CliCommand> = {};
