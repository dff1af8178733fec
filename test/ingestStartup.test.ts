// `xyra ingest` loads the DBOS SDK only once the file is read and COPYed (src/pipeline/ingestCommand.ts): its
// module loading no longer comes before the first byte is read. Seen from outside: a preloaded hook reports,
// when the CLI exits, whether any of the SDK's modules was loaded.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { runCli } from './support/serviceProcess.js';
import { serviceEnv, tempDir } from './pipelineSupport.js';

let appUrl: string;
let dir: string;
let hook: string;

// CommonJS modules (the SDK is one) land in require.cache, also when imported from ESM.
const HOOK = `
const fs = require('node:fs');
process.on('exit', () => {
  const loaded = Object.keys(require.cache).some((m) => m.includes('@dbos-inc/dbos-sdk'));
  fs.writeFileSync(process.env.XYRA_TEST_SDK_REPORT, loaded ? 'loaded' : 'not loaded');
});
`;

beforeAll(async () => {
  appUrl = await createTestDatabase('ingest_startup');
  dir = await tempDir('ingest-startup');
  hook = path.join(dir, 'sdk-report.cjs');
  await fs.writeFile(hook, HOOK);
  const migrated = await runCli(['migrate'], serviceEnv(appUrl), 120_000);
  expect(migrated.code, migrated.stderr).toBe(0);
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function ingestReportingSdk(file: string): Promise<{ code: number | null; stderr: string; sdk: string }> {
  const report = path.join(dir, `report-${path.basename(file)}`);
  const result = await runCli(
    ['ingest', file],
    serviceEnv(appUrl, { NODE_OPTIONS: `--require ${hook}`, XYRA_TEST_SDK_REPORT: report }),
    120_000,
  );
  return { code: result.code, stderr: result.stderr, sdk: await fs.readFile(report, 'utf8') };
}

it('a file that is not JSON records is turned away without loading the DBOS SDK', async () => {
  const file = path.join(dir, 'broken.json');
  await fs.writeFile(file, '[{"id": 1}, {"id": 2');
  const run = await ingestReportingSdk(file);
  expect(run.code).toBe(1);
  expect(run.stderr).toContain('nothing was enqueued');
  expect(run.sdk).toBe('not loaded');
});

it('a good file loads it after staging and enqueues every chunk', async () => {
  const file = path.join(dir, 'good.json');
  await fs.writeFile(file, JSON.stringify(Array.from({ length: 25 }, (_, i) => ({ id: i + 1, title: `t${i}` }))));
  const run = await ingestReportingSdk(file);
  expect(run.code, run.stderr).toBe(0);
  expect(run.sdk).toBe('loaded');
  const [row] = await query<{ n: string }>(
    systemDatabaseUrlOf(appUrl),
    "select count(*) as n from dbos.workflow_status where workflow_uuid like 'ingest:good:%'",
  );
  expect(Number(row?.n)).toBe(1); // 25 records, default chunk size: one chunk
});
