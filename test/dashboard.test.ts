// The dashboard in a real headless Chromium against a real service process (2-second cron, the simulator
// injecting faults): what it shows must be what `xyra history --json` says, it must follow the service on its
// own (no reload), and nothing it renders may execute.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FAST_CRON, startPopulatedService, type PopulatedDatabase } from './support/batchRuns.js';
import { launchBrowser } from './support/browser.js';
import pg from 'pg';
import { listBatchRuns } from '../src/ops/history.js';
import { query } from './support/database.js';
import { runCli } from './support/serviceProcess.js';

let db: PopulatedDatabase;
let browser: Browser;
let page: Page;
let baseUrl: string;
const consoleErrors: string[] = [];

const historyRow = z.object({ workflow_id: z.string(), status: z.string(), error: z.string().nullable() });

async function cli(args: string[]) {
  const r = await runCli(args, db.env);
  if (r.code !== 0) throw new Error(`xyra ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** For polling: the function behind `xyra history --json`, without starting a CLI process each time. */
async function latestRuns(limit: number) {
  const client = new pg.Client({ connectionString: db.systemUrl });
  await client.connect();
  try {
    return await listBatchRuns(client, { limit });
  } finally {
    await client.end();
  }
}

async function history(limit: number) {
  return z.array(historyRow).parse(JSON.parse(await cli(['history', '--json', '--limit', String(limit)])));
}

// Functions that run in the page (passed as functions: the page's CSP forbids evaluating strings). The test's
// TypeScript has no DOM types, so the little they touch is typed here.
type PageGlobals = { document: { body: { dataset: Record<string, string | undefined> } }; __xss?: unknown };
const refreshesAtLeast = (n: number) =>
  Number((globalThis as unknown as PageGlobals).document.body.dataset.refreshes ?? '0') >= n;
const refreshCount = () =>
  page.evaluate(() => Number((globalThis as unknown as PageGlobals).document.body.dataset.refreshes ?? '0'));

/** Waits until a refresh that started after this call has been drawn. */
async function nextFullRefresh(): Promise<void> {
  const n = await refreshCount();
  // n + 1 may be a refresh whose requests were already in flight; n + 2 started after this call.
  await page.waitForFunction(refreshesAtLeast, n + 2, { timeout: 20_000 });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  // A long, flat insert retry budget: the progress test holds the errors table locked for a few seconds.
  db = await startPopulatedService('dashboard', { PIPELINE_STEP_MAX_ATTEMPTS: '100', PIPELINE_STEP_BACKOFF_RATE: '1' });
  const ready = await db.service.waitForLog((l) => l.msg === 'xyra-scheduler ready');
  baseUrl = `http://127.0.0.1:${String(ready.healthPort)}`;
  browser = await launchBrowser();
  page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  // Refresh every second instead of three: same code path, a shorter test.
  await page.goto(`${baseUrl}/?refresh=1`);
  await page.waitForFunction(refreshesAtLeast, 1, { timeout: 20_000 });
});

afterAll(async () => {
  await browser?.close();
  await db?.service.stop();
  await db?.simulator.stop();
});

describe('dashboard in Chromium', () => {
  it('loads without console errors and shows the schedule', async () => {
    await page.waitForSelector('#timeline .mark');
    expect(await page.textContent('#cron')).toBe(FAST_CRON);
    expect(await page.textContent('#tz')).toBe('UTC');
    expect(await page.locator('#next-slots li').count()).toBe(5);
    expect(await page.isVisible('#login')).toBe(false);
    await nextFullRefresh();
    expect(consoleErrors).toEqual([]);
  });

  it('lists every schedule with its status, next slot, last outcome, failures and payload', async () => {
    const row = page.locator('#schedules tr[data-schedule="evaluation-batch"]');
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    expect(cells[0]).toBe('evaluation-batch');
    expect(cells[1]).toBe('ACTIVE');
    expect(cells[2]).toBe(`${FAST_CRON} UTC`);
    expect(cells[3]).not.toBe('–');
    expect(['running', 'completed', 'failed', 'skipped', 'triggered']).toContain(cells[4]); // running: a slow run
    expect(cells[5]).toMatch(/^\d+$/);
    expect(cells[6]).toBe('{}');
    expect(await page.locator('#schedules tr').count()).toBe(1);
  });

  it('shows a run that fails within one refresh, in the timeline and the failures list', async () => {
    db.simulator.inject({ type: 'status', status: 400, count: 1 });
    const failed = await until('a failed run in xyra history', async () =>
      (await latestRuns(5)).find((r) => r.status === 'failed'),
    );
    await nextFullRefresh();
    const mark = page.locator(`#timeline .mark[data-workflow-id="${failed.workflow_id}"]`);
    expect(await mark.getAttribute('class')).toContain('failed');
    const entry = page.locator(`#failures li[data-workflow-id="${failed.workflow_id}"]`);
    expect(await entry.count()).toBe(1);
    expect(await entry.locator('.error-text').textContent()).toBe(failed.error);
    // Click: the detail panel names the run and its error.
    await mark.click();
    const detail = await page.textContent('#run-detail');
    expect(detail).toContain(failed.workflow_id);
    expect(detail).toContain(`error: ${failed.error}`);
  });

  it('shows an error row holding <script> as text, without running it', async () => {
    const payload = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">';
    await query(db.appUrl, `insert into errors (error_key, message) values ($1, $2::jsonb)`, [
      'xss:1',
      JSON.stringify({ error: payload, kind: 'invalid_record', task_key: '<b>xss:1</b>', attempts: 1 }),
    ]);
    await nextFullRefresh();
    const row = page.locator('#errors tr[data-error-key="xss:1"]');
    expect(await row.locator('.error-text').textContent()).toBe(payload);
    expect(await row.locator('code').textContent()).toBe('<b>xss:1</b>');
    expect(await page.locator('#errors script, #errors img, #errors b').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__xss)).toBeUndefined();
  });

  it('shows the progress of a running ingest moving', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'xyra-dash-'));
    const file = path.join(dir, 'progress-ds.json');
    // 3,000 records, one of them invalid (a numeric title) in chunk 0; ids that PIPELINE_FAIL_IDS does not name.
    const lines = Array.from({ length: 3_000 }, (_, i) =>
      JSON.stringify({ id: `p${i}`, title: i === 10 ? 10 : `task ${i}` }),
    );
    writeFileSync(file, `${lines.join('\n')}\n`);
    // Hold the ingest part-way, whatever the machine's speed: with the errors table locked against inserts, the
    // one chunk holding the invalid record (chunk 0) waits while the 29 others finish.
    const lock = new pg.Client({ connectionString: db.appUrl });
    await lock.connect();
    const seen: number[] = [];
    const card = page.locator('#datasets .dataset[data-dataset="progress-ds"]');
    const reading = async () => {
      await nextFullRefresh();
      if ((await card.count()) === 0) return undefined;
      const v = Number(await card.getAttribute('data-records-done'));
      seen.push(v);
      return { v, state: await card.getAttribute('class') };
    };
    try {
      await lock.query('begin');
      await lock.query('lock table errors in exclusive mode');
      await cli(['ingest', file, '--chunk-size', '100']);
      for (;;) {
        const r = await reading();
        if (r?.v === 2_900) {
          expect(r.state).toContain('running');
          break;
        }
        if (seen.length > 15) throw new Error(`ingest never reached 2,900 of 3,000; progress seen: ${seen.join(', ')}`);
      }
    } finally {
      await lock.query('commit');
      await lock.end();
    }
    for (;;) {
      const r = await reading();
      if (r?.state?.includes('done')) break;
      if (seen.length > 60) throw new Error(`ingest did not finish; progress seen: ${seen.join(', ')}`);
    }
    // Moving: a reading strictly between nothing and everything, never going backwards, ending at all.
    expect(seen.some((v) => v > 0 && v < 3_000)).toBe(true);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(seen.at(-1)).toBe(3_000);
    expect(await card.locator('.kinds').textContent()).toContain('invalid_record 1');
    expect(await card.locator('.muted').textContent()).toContain('3,000 of 3,000 records');
  });

  it('shows the same runs as xyra history --json, oldest to newest', async () => {
    // Stop new slots so both sides read the same set: the service polls schedule edits every 5 s.
    await cli(['schedule', 'pause']);
    await new Promise((r) => setTimeout(r, 6_000));
    await until('no run in flight', async () =>
      (await latestRuns(20)).some((r) => ['enqueued', 'running', 'triggered'].includes(r.status)) ? undefined : true,
    );
    await nextFullRefresh();
    const marks = await page.$$eval('#timeline .mark', (els) =>
      els.map((e) => [e.getAttribute('data-workflow-id'), e.getAttribute('data-status')]),
    );
    const runs = await history(120);
    expect(runs.length).toBeGreaterThan(5);
    expect(marks).toEqual(runs.map((r) => [r.workflow_id, r.status]).reverse());
    expect(await page.textContent('#status')).toBe('paused');
    expect(consoleErrors).toEqual([]);
  });
});
