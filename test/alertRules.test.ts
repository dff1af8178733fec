// The shipped alerting rules (deploy/prometheus/xyra-alerts.yml), checked by real Prometheus tools: promtool
// validates them and runs their unit tests (xyra-alerts.test.yml), and a real Prometheus server loads them
// while scraping a real service process: every metric, label value and grouping label the rule expressions
// use must exist in what the service exports, so renaming a metric or a label turns this red.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase } from './support/database.js';
import { ensurePrometheus, promtool, startPrometheus, type PrometheusServer, type Vector } from './support/prometheus.js';
import { isReady, startServiceProcess } from './support/serviceProcess.js';
import { tempDir } from './pipelineSupport.js';

const RULES = path.resolve('deploy/prometheus/xyra-alerts.yml');
const RULE_TESTS = path.resolve('deploy/prometheus/xyra-alerts.test.yml');
/** The job name the rules' `up{job=...}` expects (deploy/prometheus/prometheus.yml scrapes under it). */
const JOB = 'xyra-scheduler';

let workDir = '';
let prometheus: PrometheusServer | undefined;

beforeAll(async () => {
  await ensurePrometheus(); // the Debian `prometheus` package brings promtool
  workDir = await tempDir('alerts');
}, 300_000);

afterAll(async () => {
  await prometheus?.stop();
  if (workDir) await fs.rm(workDir, { recursive: true, force: true });
});

/** Metric selectors in a PromQL expression (as Prometheus prints it): ours (`xyra_*`) and `up`. */
function selectorsOf(expr: string): string[] {
  const found = new Set<string>();
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?/g)) {
    if (m[1]!.startsWith('xyra_') || m[1] === 'up') found.add(m[0]);
  }
  return [...found];
}

/** Labels named in `by (...)`, `on (...)`, `without (...)`, `ignoring (...)` clauses. */
function groupingLabelsOf(expr: string): string[] {
  const found = new Set<string>();
  for (const m of expr.matchAll(/\b(?:by|on|without|ignoring)\s*\(([^)]*)\)/g)) {
    for (const label of m[1]!.split(',').map((l) => l.trim())) if (label) found.add(label);
  }
  return [...found];
}

it('promtool accepts the rules and their unit tests pass', async () => {
  const check = await promtool(['check', 'rules', RULES]);
  expect(check.code, check.output).toBe(0);
  expect(check.output).toMatch(/SUCCESS: [1-9]\d* rules found/);
  const unit = await promtool(['test', 'rules', RULE_TESTS]);
  expect(unit.code, unit.output).toBe(0);
  expect(unit.output).toContain('SUCCESS');
});

it('promtool test rules goes red when a rule is broken (a lower failure threshold fires too early)', async () => {
  const dir = path.join(workDir, 'broken');
  await fs.mkdir(dir);
  const rules = await fs.readFile(RULES, 'utf8');
  const broken = rules.replace(') >= 3', ') >= 2');
  expect(broken).not.toBe(rules);
  await fs.writeFile(path.join(dir, 'xyra-alerts.yml'), broken);
  await fs.copyFile(RULE_TESTS, path.join(dir, 'xyra-alerts.test.yml'));
  const unit = await promtool(['test', 'rules', 'xyra-alerts.test.yml'], dir);
  expect(unit.code).toBe(1);
  expect(unit.output).toContain('alertname: XyraConsecutiveFailures');
});

it('every metric, label value and grouping label the rules use is in a real service\'s /metrics; a healthy service raises no alert', async () => {
  const appUrl = await createTestDatabase('alerts');
  const service = startServiceProcess({
    DATABASE_URL: appUrl,
    BATCH_CRON: '*/3 * * * * *',
    EXECUTOR_ID: 'alert-rules',
    OTEL_METRICS_EXPORTER: 'prometheus',
  });
  try {
    const ready = await service.waitForLog(isReady, 60_000);
    const port = Number(ready.healthPort);
    expect(port).toBeGreaterThan(0);
    let completed = 0;
    await service.waitForLog((l) => l.msg === 'batch completed' && ++completed >= 1, 30_000);

    prometheus = await startPrometheus({ targetPort: port, workDir, jobName: JOB, ruleFiles: [RULES] });
    const server = prometheus;
    const until = async <T>(what: string, probe: () => Promise<T | undefined>): Promise<T> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    // A scrape that holds the batch series, then an evaluation of every rule after it.
    await until('a scrape with the batch series', async () => ((await server.query('xyra_batch_last_completed_time')).length > 0 ? true : undefined));
    const scraped = Date.now();
    const groups = await until('a rule evaluation after that scrape', async () => {
      const g = await server.rules();
      return g.flatMap((x) => x.rules).every((r) => Date.parse(r.lastEvaluation) > scraped) ? g : undefined;
    });

    const rules = groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.name).sort()).toEqual(
      ['XyraConsecutiveFailures', 'XyraNoCompletedRun', 'XyraScheduleLagHigh', 'XyraSchedulerAbsent', 'XyraSchedulerDown', 'XyraSlotMissed', 'XyraSlotOverdue'],
    );
    const missing: string[] = [];
    for (const rule of rules) {
      expect(rule.health, `${rule.name}: ${rule.lastError ?? ''}`).toBe('ok');
      const selectors = selectorsOf(rule.query);
      expect(selectors.length, `${rule.name} uses no metric: ${rule.query}`).toBeGreaterThan(0);
      const labels = groupingLabelsOf(rule.query);
      for (const selector of selectors) {
        const series: Vector = await server.query(selector);
        if (series.length === 0) {
          missing.push(`${rule.name}: ${selector} (no such series)`);
          continue;
        }
        const metricName = selector.replace(/\{.*$/, '');
        for (const label of labels) {
          if (label === 'le' && !metricName.endsWith('_bucket')) continue; // only histogram buckets carry `le`
          if (series.some((s) => !s.metric[label])) missing.push(`${rule.name}: ${selector} lacks label ${label}`);
        }
      }
    }
    expect(missing).toEqual([]);
    // The batch series carry the schedule's name.
    expect((await server.query('xyra_batch_runs_total')).map((s) => s.metric.schedule)).toEqual(['evaluation-batch']);

    // A healthy service (runs complete, on time, firing moves on) raises nothing, not even a pending alert.
    expect(await server.alerts()).toEqual([]);
  } finally {
    expect(await service.stop('SIGTERM')).toBe(0);
  }
}, 120_000);
