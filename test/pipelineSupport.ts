// Helpers shared by the pipeline tests: a real service process on a per-file database, the real CLI.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { query } from './support/database.js';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `xyra-${prefix}-`));
}

export function serviceEnv(appUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: appUrl,
    XYRA_DATA_DIR: path.join(os.tmpdir(), 'xyra-pipeline-tests-data'),
    EXECUTOR_ID: 'pipeline-test',
    PIPELINE_STEP_INTERVAL_MS: '20',
    ...extra,
  };
}

export async function startPipelineService(
  appUrl: string,
  extra: Record<string, string> = {},
): Promise<ServiceProcess> {
  const service = startServiceProcess(serviceEnv(appUrl, extra));
  await service.waitForLog(isReady, READY_TIMEOUT_MS);
  return service;
}

const byKindSchema = z.object({
  invalid_record: z.number(),
  transform_failed: z.number(),
  duplicate_id: z.number(),
  key_conflict: z.number(),
});

export const summarySchema = z.object({
  dataset: z.string(),
  records: z.number(),
  tasks: z.number(),
  errors: z.object({ total: z.number(), by_kind: byKindSchema }),
  no_outcome: z.number(),
  failed_chunks: z.number(),
  cancelled_chunks: z.number(),
  failed_chunk_ids: z.array(z.string()),
  cancelled_chunk_ids: z.array(z.string()),
  chunks: z.number(),
  sha256: z.string(),
  elapsed_ms: z.number(),
  records_per_s: z.number(),
});
export type IngestSummary = z.infer<typeof summarySchema>;

/** `by_kind` with every kind, zero unless given. */
export function kinds(given: Partial<z.infer<typeof byKindSchema>> = {}): z.infer<typeof byKindSchema> {
  return { invalid_record: 0, transform_failed: 0, duplicate_id: 0, key_conflict: 0, ...given };
}

export async function ingest(
  appUrl: string,
  file: string,
  args: string[] = ['--wait', '--json', '--timeout', '90'],
): Promise<{ code: number | null; stdout: string; stderr: string; summary?: IngestSummary }> {
  // The CLI's own --timeout is the bound a test sets; this one only stops a CLI that hangs past any of them.
  const result = await runCli(['ingest', file, ...args], serviceEnv(appUrl), 300_000);
  const last = result.stdout.trim().split('\n').pop() ?? '';
  const parsed = last.startsWith('{') ? summarySchema.safeParse(JSON.parse(last)) : undefined;
  return { ...result, summary: parsed?.success ? parsed.data : undefined };
}

/** Rows of one dataset (all rows without one): tasks keyed `<dataset>:…`/`<dataset>#…`, errors keyed `<dataset>@…`. */
export async function rowCounts(appUrl: string, dataset?: string): Promise<{ tasks: number; errors: number }> {
  const [row] = await query<{ tasks: string; errors: string }>(
    appUrl,
    `select (select count(*) from tasks where $1::text is null or starts_with(task_key, $1 || ':') or starts_with(task_key, $1 || '#')) as tasks,
            (select count(*) from errors where $1::text is null or starts_with(error_key, $1 || '@')) as errors`,
    [dataset ?? null],
  );
  return { tasks: Number(row?.tasks), errors: Number(row?.errors) };
}

/**
 * Records still staged for a dataset (src/pipeline/staging.ts: one table per ingestion, dropped when its last
 * chunk finishes): the row count over the dataset's staging tables that exist, or null when none does.
 */
export async function stagedRecords(appUrl: string, dataset: string): Promise<number | null> {
  const ingestions = await query<{ id: string; present: boolean }>(
    appUrl,
    "select id, to_regclass('xyra_staging.ingestion_' || id) is not null as present from ingestions where dataset = $1",
    [dataset],
  );
  let total: number | null = null;
  for (const i of ingestions.filter((r) => r.present)) {
    const [row] = await query<{ n: string }>(
      appUrl,
      `select count(*) as n from xyra_staging.ingestion_${Number(i.id)}`,
    );
    total = (total ?? 0) + Number(row?.n);
  }
  return total;
}
