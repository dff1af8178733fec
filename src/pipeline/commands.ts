// `xyra ingest` and `xyra generate`.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { positiveInt, UsageError, type CliCommand, type CliContext } from '../cliCommand.js';
import { DatasetError } from '../errors.js';
import { resolveDatabasesForClient } from '../runtime/databases.js';
import { withDbosClient } from '../runtime/dbosClient.js';
import { writeDataset, type GeneratedFormat } from './generator.js';
import { enqueueDataset, waitForDataset, type DatasetProgress, type DatasetSummary, type IngestPlan } from './ingest.js';

const PROGRESS_LINE_EVERY_MS = 5_000;
const BAR_WIDTH = 30;

/** A bar redrawn in place on a terminal; a plain line every few seconds otherwise. */
function progressReporter(
  ctx: CliContext,
  json: boolean,
  startedAt: number,
): { update(p: DatasetProgress): void; finish(): void } {
  let lastLine = Date.now();
  let drewBar = false;
  const rate = (records: number) => Math.round(records / Math.max(0.001, (Date.now() - startedAt) / 1000));
  return {
    update(p) {
      if (ctx.isTTY && !json) {
        const fraction = p.total === 0 ? 1 : p.records / p.total;
        const filled = Math.round(fraction * BAR_WIDTH);
        process.stdout.write(
          `\r[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ` +
            `${p.records}/${p.total} records, ${rate(p.records)} records/s`,
        );
        drewBar = true;
        return;
      }
      if (Date.now() - lastLine < PROGRESS_LINE_EVERY_MS) return;
      lastLine = Date.now();
      const line = `progress: ${p.records}/${p.total} records, ${p.done}/${p.chunks} chunks, ${rate(p.records)} records/s`;
      // With --json, stdout carries only the summary.
      if (json) process.stderr.write(`${line}\n`);
      else ctx.out(line);
    },
    finish() {
      if (drewBar) process.stdout.write('\n');
    },
  };
}

function summaryObject(plan: IngestPlan, summary: DatasetSummary, elapsedMs: number) {
  return {
    dataset: plan.name,
    file: plan.file,
    format: plan.format,
    sha256: plan.sha256,
    chunk_size: plan.chunkSize,
    chunks: plan.chunks,
    records: plan.records,
    tasks: summary.tasks,
    errors: summary.errors,
    inserted_tasks: summary.insertedTasks,
    inserted_errors: summary.insertedErrors,
    failed_chunks: summary.failedChunks.length,
    failed_chunk_ids: summary.failedChunks.slice(0, 20),
    elapsed_ms: elapsedMs,
    records_per_s: Math.round(plan.records / Math.max(0.001, elapsedMs / 1000)),
  };
}

async function ingest(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      wait: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'chunk-size': { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new UsageError('give exactly one dataset file');
  const chunkSize = positiveInt('chunk-size', values['chunk-size'], ctx.config.pipeline.chunkSize);
  const timeoutMs = values.timeout === undefined ? undefined : positiveInt('timeout', values.timeout, 0) * 1000;
  const startedAt = Date.now();

  const databases = await resolveDatabasesForClient(ctx.config);
  // Human-readable lines go to stderr with --json, so stdout holds only the JSON summary.
  const say = (line: string) => (values.json ? process.stderr.write(`${line}\n`) : ctx.out(line));
  return withDbosClient(databases.systemDatabaseUrl, ctx.logger, async (client) => {
    let plan: IngestPlan & { rerun: string[] };
    try {
      plan = await enqueueDataset(client, path.resolve(file), chunkSize);
    } catch (e) {
      if (e instanceof DatasetError) {
        process.stderr.write(`xyra ingest: invalid dataset ${e.message}; nothing was enqueued\n`);
        return 1;
      }
      throw e;
    }
    say(`enqueued ${plan.records} records of dataset "${plan.name}" in ${plan.chunks} chunks (workflow ids ${plan.workflowPrefix}*)`);
    if (plan.rerun.length > 0) say(`re-running ${plan.rerun.length} chunk(s) that had failed: ${plan.rerun.join(', ')}`);
    if (!values.wait) return 0;

    const reporter = progressReporter(ctx, values.json, startedAt);
    const summary = await waitForDataset(client, plan, {
      pollMs: 500,
      timeoutMs,
      onProgress: (p) => reporter.update(p),
    }).finally(() => reporter.finish());
    const out = summaryObject(plan, summary, Date.now() - startedAt);
    if (values.json) ctx.out(JSON.stringify(out));
    else {
      ctx.out(
        `done: records=${out.records} tasks=${out.tasks} errors=${out.errors} inserted_tasks=${out.inserted_tasks} ` +
          `inserted_errors=${out.inserted_errors} elapsed=${(out.elapsed_ms / 1000).toFixed(2)}s records/s=${out.records_per_s}`,
      );
    }
    if (summary.failedChunks.length > 0) {
      process.stderr.write(`xyra ingest: ${summary.failedChunks.length} chunk workflow(s) failed: ${summary.failedChunks.slice(0, 5).join(', ')}\n`);
      return 1;
    }
    return 0;
  });
}

async function generate(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      records: { type: 'string' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      format: { type: 'string', default: 'json' },
    },
  });
  const records = positiveInt('records', values.records, 0);
  if (records === 0) throw new UsageError('--records N is required');
  const seed = positiveInt('seed', values.seed, 1);
  if (values.format !== 'json' && values.format !== 'ndjson') throw new UsageError('--format must be json or ndjson');
  const format: GeneratedFormat = values.format;
  const file = path.resolve(values.out ?? path.join('data', `generated_${records}_s${seed}.${format}`));
  await writeDataset(file, records, seed, format);
  ctx.out(`wrote ${records} records (seed ${seed}) to ${file}`);
  return 0;
}

export const pipelineCommands: Record<string, CliCommand> = {
  ingest: {
    summary: 'feed a dataset (JSON array or NDJSON) into the service\'s task queue',
    usage: 'xyra ingest FILE [--wait] [--json] [--chunk-size N] [--timeout SECONDS]',
    run: ingest,
  },
  generate: {
    summary: 'write a seeded, reproducible dataset of N records',
    usage: 'xyra generate --records N [--seed S] [--out FILE] [--format json|ndjson]',
    run: generate,
  },
};
