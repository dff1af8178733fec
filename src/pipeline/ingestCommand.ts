// `xyra ingest`: stage a dataset, enqueue its chunks, optionally wait and account for every record. Loaded only
// when `xyra ingest` runs (pipeline/commands.ts lists it).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { positiveInt, UsageError, withDb, type CliContext } from '../cliCommand.js';
import { DatasetError } from '../errors.js';
import { resolveDatabasesForClient } from '../runtime/databases.js';
import { withDbosClient } from '../runtime/dbosClient.js';
import pg from 'pg';
import { setDbRetryMaxBackoff } from '../runtime/dbosInternals.js';
import {
  enqueueDataset,
  waitForDataset,
  type Accounting,
  type DatasetProgress,
  type IngestPlan,
  type Rerun,
} from './ingest.js';

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

function summaryObject(plan: IngestPlan, a: Accounting, elapsedMs: number) {
  return {
    dataset: plan.name,
    file: plan.file,
    format: plan.format,
    sha256: plan.sha256,
    chunk_size: plan.chunkSize,
    chunks: plan.chunks,
    records: a.records,
    tasks: a.tasks,
    errors: a.errors,
    no_outcome: a.noOutcome,
    failed_chunks: a.failedChunks.length,
    cancelled_chunks: a.cancelledChunks.length,
    failed_chunk_ids: a.failedChunks.slice(0, 20),
    cancelled_chunk_ids: a.cancelledChunks.slice(0, 20),
    elapsed_ms: elapsedMs,
    records_per_s: Math.round(a.records / Math.max(0.001, elapsedMs / 1000)),
  };
}

function datasetNameOption(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '' || /[\u0000-\u001f]/.test(value))
    throw new UsageError(`--name must be a non-empty name without control characters, got ${JSON.stringify(value)}`);
  return value;
}

function sayRerun(rerun: Rerun, say: (line: string) => void): void {
  if (rerun.failed.length > 0)
    say(
      `re-running ${rerun.failed.length} chunk(s) that had failed, as new workflows forked from: ${rerun.failed.join(', ')}`,
    );
  if (rerun.cancelled.length > 0)
    say(`re-running ${rerun.cancelled.length} cancelled chunk(s) (--retry-cancelled): ${rerun.cancelled.join(', ')}`);
  if (rerun.keptCancelled.length > 0) {
    say(
      `${rerun.keptCancelled.length} chunk(s) stay cancelled (give --retry-cancelled to re-run them): ${rerun.keptCancelled.slice(0, 5).join(', ')}`,
    );
  }
}

export async function ingest(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      wait: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      name: { type: 'string' },
      'retry-cancelled': { type: 'boolean', default: false },
      'chunk-size': { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new UsageError('give exactly one dataset file');
  const chunkSize = positiveInt('chunk-size', values['chunk-size'], ctx.config.pipeline.chunkSize);
  const timeoutMs = values.timeout === undefined ? undefined : positiveInt('timeout', values.timeout, 0) * 1000;
  const name = datasetNameOption(values.name);
  const startedAt = Date.now();

  const databases = await resolveDatabasesForClient(ctx.config);
  // Human-readable lines go to stderr with --json, so stdout holds only the JSON summary.
  const say = (line: string) => (values.json ? process.stderr.write(`${line}\n`) : ctx.out(line));
  return withDb(databases.appDatabaseUrl, (db) =>
    withDbosClient(databases.systemDatabaseUrl, ctx.logger, async (client) => {
      let plan: IngestPlan & { rerun: Rerun };
      try {
        plan = await enqueueDataset(client, db, path.resolve(file), {
          chunkSize,
          name,
          retryCancelled: values['retry-cancelled'],
        });
      } catch (e) {
        if (e instanceof DatasetError) {
          const changed = /changed while/.test(e.message);
          process.stderr.write(
            `xyra ingest: ${changed ? '' : 'invalid dataset '}${e.message}${changed ? '' : '; nothing was enqueued'}\n`,
          );
          return 1;
        }
        throw e;
      }
      say(
        `enqueued ${plan.records} records of dataset "${plan.name}" in ${plan.chunks} chunks (workflow ids ${plan.workflowPrefix}*)`,
      );
      sayRerun(plan.rerun, say);
      if (!values.wait) return 0;

      const reporter = progressReporter(ctx, values.json, startedAt);
      // Waiting reads through a pool: it reconnects after a database outage, which the one client cannot.
      const waitDb = new pg.Pool({ connectionString: databases.appDatabaseUrl, max: 1, application_name: 'xyra-cli' });
      waitDb.on('error', () => undefined); // an idle connection dropped by an outage: the next read reconnects
      setDbRetryMaxBackoff(2); // the DBOS client's reads retry every ≤ 3 s, not ≤ 90 s, once the database is back
      const accounting = await waitForDataset(client, waitDb, plan, {
        pollMs: 500,
        timeoutMs,
        onProgress: (p) => reporter.update(p),
        onUnreachable: (error) =>
          process.stderr.write(
            error === undefined
              ? 'xyra ingest: database reachable again, still waiting\n'
              : `xyra ingest: database unreachable (${error}): still waiting\n`,
          ),
      }).finally(() => {
        reporter.finish();
        void waitDb.end().catch(() => undefined);
      });
      const out = summaryObject(plan, accounting, Date.now() - startedAt);
      if (values.json) ctx.out(JSON.stringify(out));
      else {
        const kinds = Object.entries(out.errors.by_kind)
          .map(([k, n]) => `${k}=${n}`)
          .join(' ');
        ctx.out(
          `done: records=${out.records} tasks=${out.tasks} errors=${out.errors.total} (${kinds}) ` +
            `elapsed=${(out.elapsed_ms / 1000).toFixed(2)}s records/s=${out.records_per_s}`,
        );
      }
      if (accounting.noOutcome !== 0 || accounting.failedChunks.length > 0 || accounting.cancelledChunks.length > 0) {
        const which = [
          ...accounting.failedChunks.map((c) => `${c} (failed)`),
          ...accounting.cancelledChunks.map((c) => `${c} (cancelled)`),
        ];
        process.stderr.write(
          `xyra ingest: ${accounting.noOutcome} of ${accounting.records} records have no outcome (records != tasks + errors)` +
            `${which.length > 0 ? `; chunks: ${which.slice(0, 10).join(', ')}${which.length > 10 ? ', …' : ''}` : ''}` +
            `${accounting.cancelledChunks.length > 0 ? '; cancelled chunks re-run only with --retry-cancelled' : ''}\n`,
        );
        return 1;
      }
      return 0;
    }),
  );
}
