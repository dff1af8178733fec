// The shipped alerting rules (deploy/prometheus/xyra-alerts.yml), checked by real Prometheus tools: promtool
// validates them and runs their unit tests (xyra-alerts.test.yml), and a real Prometheus server loads them
// while scraping a real service process: every metric, label value and grouping label the rule expressions
// use must exist in what the service exports, so renaming a metric or a label turns this red.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CronSchedule } from '../src/evaluation/cron.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import { freePort, promtool, startPrometheus, type PrometheusServer, type Vector } from './support/prometheus.js';
import { isReady, READY_TIMEOUT_MS, startServiceProcess, type LogLine } from './support/serviceProcess.js';
import { tempDir } from './pipelineSupport.js';

const RULES = path.resolve('deploy/prometheus/xyra-alerts.yml');
const RULE_TESTS = path.resolve('deploy/prometheus/xyra-alerts.test.yml');
/** The job name the rules' `up{job=...}` expects (deploy/prometheus/prometheus.yml scrapes under it). */
const JOB = 'xyra-scheduler';

let workDir = '';
const prometheusServers: PrometheusServer[] = [];

beforeAll(async () => {
  workDir = await tempDir('alerts');
}, 300_000);

afterAll(async () => {
  for (const p of prometheusServers) await p.stop();
  if (workDir) await fs.rm(workDir, { recursive: true, force: true });
});

/** Metric selectors in a PromQL expression (as Prometheus prints it): ours (`xyra_*`) and `up`. */
/** Polls `probe` until it returns a value (generous bound: the machine is shared). */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The value of the sample of `name` with schedule="evaluation-batch" (and `labels`) in a Prometheus text exposition. */
function sampleOf(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries({ schedule: 'evaluation-batch', ...labels }).map(([k, v]) => `${k}="${v}"`);
  const line = exposition.split('\n').find((l) => l.startsWith(`${name}{`) && wanted.every((w) => l.includes(w)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

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

it('the shipped Prometheus config loads the rules under the job name they expect; its compose overlay passes dclint', async () => {
  const config = path.resolve('deploy/prometheus/prometheus.yml');
  const check = await promtool(['check', 'config', config]);
  expect(check.code, check.output).toBe(0);
  expect(check.output).toContain('SUCCESS: 1 rule files found');
  expect(await fs.readFile(config, 'utf8')).toMatch(new RegExp(`^  - job_name: ${JOB}$`, 'm'));
  const overlay = spawnSync(path.resolve('node_modules/.bin/dclint'), ['deploy/compose.prometheus.yml'], {
    encoding: 'utf8',
  });
  expect(overlay.status, overlay.stdout + overlay.stderr).toBe(0);
  // Compose resolves an overlay's paths from the project directory: the mounts name files that exist from there.
  const overlayText = await fs.readFile('deploy/compose.prometheus.yml', 'utf8');
  const mounts = [...overlayText.matchAll(/^\s+- (\.\/[^:]+):/gm)].map((m) => m[1]!);
  expect(mounts).toEqual(['./deploy/prometheus/prometheus.yml', './deploy/prometheus/xyra-alerts.yml']);
  for (const m of mounts) await fs.access(m);
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

it("every metric, label value and grouping label the rules use is in a real service's /metrics; a healthy service raises no alert", async () => {
  const appUrl = await createMigratedTestDatabase('alerts');
  const service = startServiceProcess({
    DATABASE_URL: appUrl,
    BATCH_CRON: '*/3 * * * * *',
    EXECUTOR_ID: 'alert-rules',
    OTEL_METRICS_EXPORTER: 'prometheus',
  });
  try {
    const ready = await service.waitForLog(isReady, READY_TIMEOUT_MS);
    const port = Number(ready.healthPort);
    expect(port).toBeGreaterThan(0);
    let completed = 0;
    await service.waitForLog((l) => l.msg === 'batch completed' && ++completed >= 1, 30_000);

    const server = await startPrometheus({
      targetPort: port,
      workDir: await tempDir('alerts-scrape'),
      jobName: JOB,
      ruleFiles: [RULES],
    });
    prometheusServers.push(server);
    // A scrape that holds the batch series, then an evaluation of every rule after it.
    await until('a scrape with the batch series', async () =>
      (await server.query('xyra_batch_last_completed_time')).length > 0 ? true : undefined,
    );
    const scraped = Date.now();
    const groups = await until('a rule evaluation after that scrape', async () => {
      const g = await server.rules();
      return g.flatMap((x) => x.rules).every((r) => Date.parse(r.lastEvaluation) > scraped) ? g : undefined;
    });

    const rules = groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.name).sort()).toEqual([
      'XyraConsecutiveFailures',
      'XyraNoCompletedRun',
      'XyraScheduleLagHigh',
      'XyraSchedulerAbsent',
      'XyraSchedulerDown',
      'XyraSlotMissed',
      'XyraSlotOverdue',
    ]);
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

it('a failing API fires XyraConsecutiveFailures in a real Prometheus; a restarted replica exports the streak and the last completed slot from the history', async () => {
  const simulator = new XyraSimulator();
  const apiUrl = await simulator.start();
  const appUrl = await createMigratedTestDatabase('alertfire');
  const port = await freePort(); // the same target for Prometheus across the restart
  const env = {
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    XYRA_MAX_ATTEMPTS: '1',
    EXECUTOR_ID: 'alert-fire',
    PORT: String(port),
    OTEL_METRICS_EXPORTER: 'prometheus',
  };
  const server = await startPrometheus({
    targetPort: port,
    workDir: await tempDir('alerts-fire'),
    jobName: JOB,
    ruleFiles: [RULES],
  });
  prometheusServers.push(server);
  const failuresFiring = async () =>
    (await server.alerts()).find((a) => a.labels.alertname === 'XyraConsecutiveFailures' && a.state === 'firing');
  const first = startServiceProcess({ ...env, BATCH_CRON: '*/2 * * * * *' });
  try {
    await first.waitForLog(isReady, READY_TIMEOUT_MS);
    await first.waitForLog((l) => l.msg === 'batch completed', 30_000);
    simulator.inject({ type: 'inProgress' }); // the API's own skip: counted under reason="api"
    await first.waitForLog((l) => l.msg === 'batch skipped', 30_000);
    simulator.inject({ type: 'status', status: 400, count: 100_000 }); // failed at once, no retry
    const alert = await until('XyraConsecutiveFailures firing', failuresFiring);
    expect(alert.labels).toMatchObject({ schedule: 'evaluation-batch', severity: 'critical' });
    const skipped: Record<string, string | undefined> = Object.fromEntries(
      (await server.query('xyra_batch_skipped_slots_total')).map((s) => [s.metric.reason ?? '', s.value[1]]),
    );
    // Every reason is exported; on a loaded machine a slow run may make the next slot skip as in_progress.
    expect(Object.keys(skipped).sort()).toEqual(['api', 'in_progress', 'missed', 'not_a_slot', 'paused', 'superseded']);
    expect({ ...skipped, in_progress: undefined }).toEqual({
      api: '1',
      missed: '0',
      paused: '0',
      not_a_slot: '0',
      superseded: '0',
      in_progress: undefined,
    });
  } finally {
    expect(await first.stop('SIGTERM')).toBe(0);
  }
  // Down: the scrape fails, the old process's series go stale and the alert resolves.
  await until('the alert to resolve while the service is down', async () =>
    (await failuresFiring()) === undefined ? true : undefined,
  );

  // Restarted on a cron with no slot for months: whatever it exports about runs comes from the history.
  const yearly = '0 0 1 1 *';
  const second = startServiceProcess({ ...env, BATCH_CRON: yearly });
  try {
    // The new cron is in effect from start-up (the changed BATCH_CRON is an edit recorded then): slots before
    // its ready line still belong to the old cron, and the downtime's are caught up under it.
    const readyAt = Date.parse(String((await second.waitForLog(isReady, READY_TIMEOUT_MS)).time));
    // The history as it stands once no run is unfinished: runs the first left unfinished (a loaded machine can
    // make a stop outlast SHUTDOWN_TIMEOUT_MS) are recovered by the same executor, and slots of the old cron
    // missed while nothing ran are caught up, both by this replica after its start.
    const settledHistory = async () => {
      const sys = systemDatabaseUrlOf(appUrl);
      const [open] = await query<{ n: string }>(
        sys,
        `select count(*) as n from dbos.workflow_status
          where status in ('PENDING', 'ENQUEUED') and workflow_uuid like 'sched-evaluation-batch-%'`,
      );
      if (open?.n !== '0') return undefined;
      const runs = await query<{ status: string; skipped_reason: string | null; scheduled_time: Date }>(
        sys,
        'select status, skipped_reason, scheduled_time from xyra.batch_runs order by scheduled_time',
      );
      const lastCompleted = Math.max(
        ...runs.filter((r) => r.status === 'completed').map((r) => r.scheduled_time.getTime()),
      );
      const streakStart = Math.max(
        ...runs
          .filter((r) => r.status === 'completed' || (r.status === 'skipped' && r.skipped_reason === null))
          .map((r) => r.scheduled_time.getTime()),
      );
      const streak = runs.filter((r) => r.status === 'failed' && r.scheduled_time.getTime() > streakStart).length;
      return { lastCompleted, streak };
    };
    // The seed reads the history in the background after start-up, and runs after it update the gauges: wait
    // until what is exported agrees with the settled history (it never does if either is wrong).
    const { exposition, history } = await until('the exported streak to match the history', async () => {
      const history = await settledHistory();
      if (!history) return undefined;
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
      const agrees =
        sampleOf(text, 'xyra_batch_consecutive_failures') === history.streak &&
        sampleOf(text, 'xyra_batch_last_completed_time') === history.lastCompleted / 1000;
      return agrees ? { exposition: text, history } : undefined;
    });
    expect(history.streak).toBeGreaterThanOrEqual(3);
    expect(sampleOf(exposition, 'xyra_batch_consecutive_failures')).toBe(history.streak);
    expect(sampleOf(exposition, 'xyra_batch_last_completed_time')).toBe(history.lastCompleted / 1000);
    expect(sampleOf(exposition, 'xyra_batch_schedule_paused')).toBe(0);
    const cron = new CronSchedule(yearly, 'UTC');
    const next = cron.next(new Date());
    expect(sampleOf(exposition, 'xyra_batch_next_slot_time')).toBe(next.getTime() / 1000);
    expect(sampleOf(exposition, 'xyra_batch_slot_interval')).toBe((cron.next(next).getTime() - next.getTime()) / 1000);
    // ... so the alert fires again for the restarted replica, before any run of it.
    const again = await until('XyraConsecutiveFailures firing after the restart', failuresFiring);
    expect(again.labels).toMatchObject({ schedule: 'evaluation-batch' });
    // No slot of the new cron ran (it has none for months). Slots of the old cron missed while nothing ran are
    // caught up at start, and runs the first left unfinished are recovered: all of slots before it was ready,
    // all in the history read above.
    const slotOf = (l: LogLine) =>
      typeof l.workflowId === 'string'
        ? Date.parse(l.workflowId.replace('sched-evaluation-batch-', ''))
        : Date.parse(String(l.scheduledTime));
    const batchLines = second.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('batch '));
    expect(batchLines.filter((l) => !(slotOf(l) < readyAt))).toEqual([]);
  } finally {
    expect(await second.stop('SIGTERM')).toBe(0);
    await simulator.stop();
  }
}, 240_000);

it('slots missed in a downtime fire XyraSlotMissed in a real Prometheus, though counted before the first scrape of the restarted replica', async () => {
  const appUrl = await createMigratedTestDatabase('alertmissed');
  const port = await freePort();
  // Slots older than 4 s at start-up are summed up (never run); the window's slots are caught up under
  // `latest` (all but the newest skipped as missed).
  const env = {
    DATABASE_URL: appUrl,
    BATCH_CRON: '*/2 * * * * *',
    BATCH_CATCH_UP_WINDOW: '4s',
    EXECUTOR_ID: 'alert-missed',
    PORT: String(port),
    OTEL_METRICS_EXPORTER: 'prometheus',
  };
  const first = startServiceProcess(env);
  try {
    await first.waitForLog(isReady, READY_TIMEOUT_MS);
    await first.waitForLog((l) => l.msg === 'batch completed', 30_000);
  } finally {
    expect(await first.stop('SIGTERM')).toBe(0);
  }
  const server = await startPrometheus({
    targetPort: port,
    workDir: await tempDir('alerts-missed'),
    jobName: JOB,
    ruleFiles: [RULES],
  });
  prometheusServers.push(server);
  await new Promise((r) => setTimeout(r, 9_000)); // the downtime: 4 or 5 slots, some older than the window
  const second = startServiceProcess(env);
  try {
    await second.waitForLog(isReady, READY_TIMEOUT_MS);
    const alert = await until('XyraSlotMissed firing', async () =>
      (await server.alerts()).find((a) => a.labels.alertname === 'XyraSlotMissed' && a.state === 'firing'),
    );
    expect(alert.labels).toMatchObject({ schedule: 'evaluation-batch', severity: 'warning' });

    // The counter holds every missed slot on record: the summary's and the runs skipped as missed.
    const summaries = await query<{ count: number }>(
      appUrl,
      `select (details ->> 'count')::int as count from schedule_events where kind = 'missed_summary'`,
    );
    expect(summaries.length).toBe(1);
    expect(summaries[0]!.count).toBeGreaterThanOrEqual(1);
    const onRecord = async () => {
      const [row] = await query<{ n: number }>(
        systemDatabaseUrlOf(appUrl),
        `select count(*)::int as n from xyra.batch_runs where skipped_reason = 'missed'`,
      );
      return summaries[0]!.count + row!.n;
    };
    const exported = async () =>
      sampleOf(
        await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()),
        'xyra_batch_skipped_slots_total',
        { reason: 'missed' },
      );
    await until('the missed counter to match the history', async () =>
      (await exported()) === (await onRecord()) ? true : undefined,
    );
    expect(await exported()).toBe(await onRecord());
  } finally {
    expect(await second.stop('SIGTERM')).toBe(0);
  }
}, 240_000);
