// Helpers shared by the pipeline tests: a real service process on a per-file database, the real CLI.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { query } from './support/database.js';
import { isReady, runCli, startServiceProcess, type ServiceProcess } from './support/serviceProcess.js';

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

export async function startPipelineService(appUrl: string, extra: Record<string, string> = {}): Promise<ServiceProcess> {
  const service = startServiceProcess(serviceEnv(appUrl, extra));
  await service.waitForLog(isReady, 60_000);
  return service;
}

export const summarySchema = z.object({
  dataset: z.string(),
  records: z.number(),
  tasks: z.number(),
  errors: z.number(),
  inserted_tasks: z.number(),
  inserted_errors: z.number(),
  failed_chunks: z.number(),
  chunks: z.number(),
  elapsed_ms: z.number(),
  records_per_s: z.number(),
});
export type IngestSummary = z.infer<typeof summarySchema>;

export async function ingest(
  appUrl: string,
  file: string,
  args: string[] = ['--wait', '--json', '--timeout', '90'],
): Promise<{ code: number | null; stdout: string; stderr: string; summary?: IngestSummary }> {
  const result = await runCli(['ingest', file, ...args], serviceEnv(appUrl), 120_000);
  const last = result.stdout.trim().split('\n').pop() ?? '';
  const parsed = last.startsWith('{') ? summarySchema.safeParse(JSON.parse(last)) : undefined;
  return { ...result, summary: parsed?.success ? parsed.data : undefined };
}

export async function rowCounts(appUrl: string, keyPrefix = ''): Promise<{ tasks: number; errors: number; both: number }> {
  const [row] = await query<{ tasks: string; errors: string; both: string }>(
    appUrl,
    `select (select count(*) from tasks where task_key like $1) as tasks,
            (select count(*) from errors where error_key like $1) as errors,
            (select count(*) from tasks t join errors e on e.error_key = t.task_key where t.task_key like $1) as both`,
    [`${keyPrefix}%`],
  );
  return { tasks: Number(row?.tasks), errors: Number(row?.errors), both: Number(row?.both) };
}
