// OTEL_METRICS_EXPORTER=prometheus: a real Prometheus server (the Debian package, installed by
// the test run's global setup (scripts/ensure-test-tools.sh) when missing) scrapes the service's /metrics every second, and a PromQL query
// answers the same numbers as the rows in tasks/errors, by operation.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase } from './support/database.js';
import { startPrometheus, type PrometheusServer } from './support/prometheus.js';
import { ingest, rowCounts, startPipelineService, tempDir } from './pipelineSupport.js';

let prometheus: PrometheusServer | undefined;
let workDir = '';

beforeAll(async () => {
  // Installs the Debian package on a fresh machine (apt-get); a no-op when /usr/bin/prometheus exists.
  workDir = await tempDir('prometheus');
}, 300_000);

afterAll(async () => {
  await prometheus?.stop();
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

    prometheus = await startPrometheus({ targetPort: port, workDir, jobName: 'xyra' });
    const promQuery = prometheus.query;
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
