// OTEL_METRICS_EXPORTER=prometheus: a real Prometheus server (the Debian package, installed by the test
// run's global setup, scripts/ensure-test-tools.sh, when missing) scrapes the service's /metrics every second, and a PromQL query
// answers the same numbers as the rows in tasks/errors, by operation.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { createTestDatabase } from './support/database.js';
import { ingest, rowCounts, startPipelineService, tempDir } from './pipelineSupport.js';

const vectorSchema = z.object({
  status: z.literal('success'),
  data: z.object({
    resultType: z.literal('vector'),
    result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) })),
  }),
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

let prometheus: ChildProcess | undefined;
let prometheusUrl = '';
let workDir = '';

async function startPrometheus(targetPort: number): Promise<void> {
  const port = await freePort();
  const configFile = path.join(workDir, 'prometheus.yml');
  await fs.writeFile(
    configFile,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: xyra',
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${targetPort}']`,
      '',
    ].join('\n'),
  );
  prometheus = spawn(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(workDir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  prometheus.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  prometheusUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${prometheusUrl}/-/ready`).then((r) => r.ok, () => false);
    if (ready) return;
    if (Date.now() > deadline || prometheus.exitCode !== null) throw new Error(`prometheus did not become ready:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function promQuery(expr: string): Promise<z.infer<typeof vectorSchema>['data']['result']> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return vectorSchema.parse(await res.json()).data.result;
}

beforeAll(async () => {
  workDir = await tempDir('prometheus');
});

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((r) => prometheus!.once('exit', r));
    prometheus.kill('SIGTERM');
    await exited;
  }
  if (workDir) await fs.rm(workDir, { recursive: true, force: true });
});

it('serves /metrics that a real Prometheus scrapes; PromQL by operation equals the rows in tasks and errors', async () => {
  const appUrl = await createTestDatabase('prometheus');
  const service = await startPipelineService(appUrl, {
    EXECUTOR_ID: 'prometheus-test',
    PIPELINE_FAIL_IDS: '10,20,30',
    OTEL_METRICS_EXPORTER: 'prometheus',
  });
  try {
    const port = Number(service.logs.find((l) => l.msg === 'xyra-scheduler ready')?.healthPort);
    expect(port).toBeGreaterThan(0);
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
    expect(text).toContain('# TYPE target_info gauge');

    await startPrometheus(port);
    const ingested = await ingest(appUrl, 'data/tasks_100.json');
    expect(ingested.code, ingested.stderr).toBe(0);
    const malformed = await ingest(appUrl, 'data/malformed_records.json');
    expect(malformed.code, malformed.stderr).toBe(0);
    const rows = await rowCounts(appUrl);
    expect(rows).toEqual({ tasks: 97 + 5, errors: 3 + 5 });
    const expected = { insert_task: String(rows.tasks), insert_error: String(rows.errors) };

    // Scrapes happen every second: wait for one that follows the ingestion, then compare.
    const expr = 'sum by (operation) (xyra_db_operations_total{job="xyra"})';
    let answer: Record<string, string> = {};
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      answer = Object.fromEntries((await promQuery(expr)).map((s) => [s.metric.operation ?? '?', s.value[1]]));
      if (answer.insert_task === expected.insert_task && answer.insert_error === expected.insert_error) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(answer).toEqual(expected);
    const up = await promQuery('up{job="xyra"}');
    expect(up.map((s) => s.value[1])).toEqual(['1']);
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
  }
});
