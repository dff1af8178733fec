// The service's HTTP surface beside the dashboard page: `/api/*` answers exactly what the CLI's `--json` prints,
// DASHBOARD_TOKEN locks `/` and `/api/*` (never health or metrics), bad parameters get a 400 naming them, and
// the token appears nowhere it could leak. A real service process; the login form in a real Chromium.
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CronSchedule } from '../src/evaluation/cron.js';
import { createLogger } from '../src/logger.js';
import { triggerNow, waitForOutcome } from '../src/ops/scheduleControl.js';
import { writeDataset } from '../src/pipeline/generator.js';
import { withDbosClient } from '../src/runtime/dbosClient.js';
import { startHttpServer } from '../src/ops/httpServer.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { launchBrowser } from './support/browser.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

const TOKEN = 'dash-T0ken-for-tests-7f3a';
// Fires once a year: the runs in the database are the ones this test triggers, so API and CLI read the same set.
const RARE_CRON = '0 0 1 1 *';

let simulator: XyraSimulator;
let service: ServiceProcess;
let env: Record<string, string>;
let base: string;
let browser: Browser | undefined;

async function cli(args: string[]): Promise<string> {
  const r = await runCli(args, env);
  if (r.code !== 0) throw new Error(`xyra ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function get(pathAndQuery: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${pathAndQuery}`, { headers });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers };
}

const authorized = { authorization: `Bearer ${TOKEN}` };

async function apiJson(pathAndQuery: string): Promise<unknown> {
  const r = await get(pathAndQuery, authorized);
  if (r.status !== 200) throw new Error(`${pathAndQuery}: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as unknown;
}

beforeAll(async () => {
  simulator = new XyraSimulator();
  const apiUrl = await simulator.start();
  const appUrl = await createMigratedTestDatabase('api');
  env = {
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    BATCH_CRON: RARE_CRON,
    BATCH_TIMEZONE: 'Europe/Paris',
    DASHBOARD_TOKEN: TOKEN,
    EXECUTOR_ID: 'api-test',
    SHUTDOWN_TIMEOUT_MS: '5000',
    XYRA_MAX_ATTEMPTS: '1',
    PIPELINE_FAIL_IDS: '3',
  };
  service = startServiceProcess(env);
  const ready = await service.waitForLog(isReady, READY_TIMEOUT_MS);
  base = `http://127.0.0.1:${String(ready.healthPort)}`;
  // Two manual runs, one failed, and a small dataset: every section has rows. Driven in-process through the
  // same client functions the CLI uses (a CLI process per step would double this file's time).
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'xyra-api-')), 'api-ds.json');
  await writeDataset(file, 50, 3, 'json');
  const app = new pg.Client({ connectionString: appUrl });
  await app.connect();
  await withDbosClient(systemDatabaseUrlOf(appUrl), createLogger('warn'), async (client) => {
    const ok = await waitForOutcome(client, await triggerNow(client, app), 20_000);
    expect(ok?.status).toBe('completed');
    simulator.inject({ type: 'status', status: 400, count: 1 });
    const failed = await waitForOutcome(client, await triggerNow(client, app), 20_000);
    expect(failed?.status).toBe('failed');
  });
  await app.end();
  await cli(['ingest', file, '--wait', '--chunk-size', '20', '--timeout', '30']);
});

afterAll(async () => {
  await browser?.close();
  await service?.stop();
  await simulator?.stop();
});

describe('DASHBOARD_TOKEN', () => {
  it('answers 401 on / and /api/* without the right bearer token, and never echoes the token', async () => {
    for (const p of ['/', '/api/runs', '/api/schedule', '/api/stats', '/api/datasets', '/api/errors']) {
      const attempts: Array<Record<string, string>> = [
        {},
        { authorization: 'Bearer wrong' },
        { authorization: `Bearer ${TOKEN}x` },
        { authorization: TOKEN },
      ];
      for (const headers of attempts) {
        const r = await get(p, headers);
        expect({ p, headers, status: r.status }).toEqual({ p, headers, status: 401 });
        expect(r.text).not.toContain(TOKEN);
      }
    }
  });

  it('serves / with the token, and /api/* as JSON', async () => {
    const page = await get('/', authorized);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const runs = await get('/api/runs', authorized);
    expect(runs.status).toBe(200);
    expect(runs.headers.get('content-type')).toBe('application/json');
  });

  it('leaves /healthz and /readyz open', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
  });

  it('keeps the token out of the service output', () => {
    expect(service.output()).not.toContain(TOKEN);
  });

  it('the page asks once in a real browser, keeps the token in the tab session, never in the URL', async () => {
    browser = await launchBrowser();
    const context = await browser.newContext();
    const page = await context.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const first = await page.goto(`${base}/`);
    expect(first?.status()).toBe(401);
    await page.waitForSelector('#login:not([hidden])');
    expect(await page.isHidden('#dashboard')).toBe(true);
    await page.fill('#token', 'not-the-token');
    await page.click('#login button');
    await page.waitForFunction(() => {
      const g = globalThis as unknown as {
        document: { getElementById(id: string): { textContent: string | null } | null };
      };
      return (g.document.getElementById('login-error')?.textContent ?? '') !== '';
    });
    expect(await page.textContent('#login-error')).toBe('That token was not accepted.');
    await page.fill('#token', TOKEN);
    await page.click('#login button');
    await page.waitForSelector('#timeline .mark');
    expect(await page.isHidden('#login')).toBe(true);
    expect(
      await page.evaluate(
        () => (globalThis as unknown as { sessionStorage: { length: number } }).sessionStorage.length,
      ),
    ).toBe(1);
    // A reload in the same tab does not ask again.
    await page.reload();
    await page.waitForSelector('#timeline .mark');
    expect(await page.isHidden('#login')).toBe(true);
    expect(requests.some((u) => u.includes(TOKEN))).toBe(false);
    await context.close();
  });
});

describe('/api answers what the CLI --json prints', () => {
  it('/api/runs equals xyra history --json', async () => {
    const cliRuns = JSON.parse(await cli(['history', '--json', '--limit', '50'])) as unknown[];
    expect(cliRuns).toHaveLength(2);
    expect(await apiJson('/api/runs?limit=50')).toEqual(cliRuns);
    expect(await apiJson('/api/runs?limit=1')).toEqual(cliRuns.slice(0, 1));
  });

  it('/api/errors equals xyra errors --json', async () => {
    const cliErrors = JSON.parse(await cli(['errors', '--json', '--limit', '10'])) as unknown[];
    expect(cliErrors).toHaveLength(1);
    expect(await apiJson('/api/errors?limit=10')).toEqual(cliErrors);
  });

  it('/api/stats equals xyra stats --json apart from the window it was asked at', async () => {
    const strip = (s: unknown) => ({ ...(s as Record<string, unknown>), since: undefined, until: undefined });
    const cliStats = JSON.parse(await cli(['stats', '--json', '--since', '2h'])) as Record<string, unknown>;
    const apiStats = (await apiJson('/api/stats?since=2h')) as Record<string, unknown>;
    expect(strip(apiStats)).toEqual(strip(cliStats));
    expect(Date.parse(String(apiStats.until)) - Date.parse(String(apiStats.since))).toBe(2 * 3_600_000);
    expect(apiStats.by_status).toEqual({ completed: 1, failed: 1 });
  });

  it('/api/schedule equals xyra schedule status --json: cron, time zone, the next five slots in that zone, the failure streak', async () => {
    const s = (await apiJson('/api/schedule')) as Record<string, unknown>;
    expect(s).toMatchObject({
      cron: RARE_CRON,
      timezone: 'Europe/Paris',
      status: 'ACTIVE',
      consecutive_failures: 1,
      paused_reason: null,
    });
    const cliStatus = JSON.parse(await cli(['schedule', 'status', '--json'])) as Record<string, unknown>;
    expect(s).toEqual(cliStatus);
    const slots = (s.next_slots as string[]).map((t) => new Date(t));
    expect(slots).toHaveLength(5);
    const cron = new CronSchedule(RARE_CRON, 'Europe/Paris');
    for (const slot of slots) expect(cron.isSlot(slot)).toBe(true);
    // Midnight on 1 January in Paris is 23:00 UTC the day before.
    expect(slots[0]!.toISOString()).toMatch(/-12-31T23:00:00\.000Z$/);
  });

  it('/api/datasets: the ingestion with records, chunk counts and errors by kind', async () => {
    const list = (await apiJson('/api/datasets')) as Array<Record<string, unknown>>;
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      dataset: 'api-ds',
      chunk_size: 20,
      chunks: { total: 3, done: 3, failed: 0, cancelled: 0 },
      records: 50,
      records_done: 50,
      tasks: 49,
      errors: { total: 1, by_kind: { invalid_record: 0, transform_failed: 1, duplicate_id: 0, key_conflict: 0 } },
      state: 'done',
    });
    expect(list).toEqual(JSON.parse(await cli(['datasets', '--json'])));
    const rows = await query<{ n: string }>(
      env.DATABASE_URL!,
      "select count(*) as n from tasks where task_key like 'api-ds:%'",
    );
    expect(Number(rows[0]?.n)).toBe(49);
  });

  it('rejects bad parameters with a 400 naming them, unknown paths with 404', async () => {
    for (const [p, name] of [
      ['/api/runs?limit=0', 'limit'],
      ['/api/runs?limit=ten', 'limit'],
      ['/api/errors?limit=-1', 'limit'],
      ['/api/stats?since=yesterday', 'since'],
    ] as const) {
      const r = await get(p, authorized);
      expect({ p, status: r.status }).toEqual({ p, status: 400 });
      expect((JSON.parse(r.text) as { error: string }).error.startsWith(`${name}:`)).toBe(true);
    }
    expect((await get('/api/nothing', authorized)).status).toBe(404);
    expect((await get('/../package.json', authorized)).status).toBe(404);
  });
});

describe('HTTP server', () => {
  it('serves an attached /metrics handler without the dashboard token', async () => {
    const server = await startHttpServer(0, {
      checkReady: async () => ({ ready: true, detail: {} }),
      dashboardToken: TOKEN,
    });
    try {
      const url = `http://127.0.0.1:${server.port}`;
      expect((await fetch(`${url}/metrics`)).status).toBe(404);
      server.attachMetrics((_req: http.IncomingMessage, res: http.ServerResponse) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('# metrics\n');
      });
      const r = await fetch(`${url}/metrics`);
      expect(r.status).toBe(200);
      expect(await r.text()).toBe('# metrics\n');
      // Before the databases are up, /api answers 503 (after the token check).
      expect((await fetch(`${url}/api/runs`)).status).toBe(401);
      expect((await fetch(`${url}/api/runs`, { headers: authorized })).status).toBe(503);
    } finally {
      await server.close();
    }
  });
});
