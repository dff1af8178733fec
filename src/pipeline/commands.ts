// Pipeline commands as `xyra` lists them; each one's code is loaded only when it runs (ingestCommand.ts,
// datasetCommands.ts): `xyra ingest` streams whole files and carries no other command's modules.
import type { CliCommand } from '../cliCommand.js';

export const pipelineCommands: Record<string, CliCommand> = {
  ingest: {
    summary: "feed a dataset (JSON array or NDJSON) into the service's task queue",
    usage: 'xyra ingest FILE [--name NAME] [--wait] [--json] [--retry-cancelled] [--chunk-size N] [--timeout SECONDS]',
    load: async () => (await import('./ingestCommand.js')).ingest,
  },
  datasets: {
    summary: 'what became of each ingestion, newest first (records, tasks, errors by kind, chunks, state)',
    usage: 'xyra datasets [--limit N] [--json]',
    load: async () => (await import('./datasetCommands.js')).datasets,
  },
  generate: {
    summary: 'write a seeded, reproducible dataset of N records',
    usage: 'xyra generate --records N [--seed S] [--out FILE] [--format json|ndjson]',
    load: async () => (await import('./datasetCommands.js')).generate,
  },
};
