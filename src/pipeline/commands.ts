// `xyra ingest` and `xyra generate` (filled in by the pipeline work).
import type { CliCommand } from '../cliCommand.js';

export const pipelineCommands: Record<string, CliCommand> = {};
