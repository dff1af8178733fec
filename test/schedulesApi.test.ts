// `/api/schedules` and the CLI's schedule commands against a real service process on real Postgres: every
// 4xx of the contract, and that nothing changed after it (no row, no version bump, no audit row); the happy
// path (201, 200, 202, 204) with one audit row per change; `schedule apply` idempotent, --dry-run, --prune.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startHttpServer, type HttpServer } from '../src/ops/httpServer.js';
import { createSchedulesApi } from '../src/ops/schedulesApi.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { UsageError } from '../src/cliCommand.js';
import { runOpsCommand } from './support/commandInProcess.js';
import { createMigratedTestDatabase, query, systemDatabaseUrlOf } from './support/database.js';
import {
  isReady,
  READY_TIMEOUT_MS,
  runCli,
  startServiceProcess,
  type ServiceProcess,
} from './support/serviceProcess.js';

const ADMIN = 'admin-secret-0123456789';
const DASH = 'dashboard-secret-0123456789';

let simulator: XyraSimulator;
let service: ServiceProcess | undefined;
let appUrl: string;
let base: string;
let env: Record<string, string>;

beforeAll(async () => {
  simulator = new XyraSimulator();
  await simulator.start();
  appUrl = await createMigratedTestDatabase('schedapi');
  env = {
    DATABASE_URL: appUrl,
    XYRA_API_URL: simulator.url,
    BATCH_CRON: '0 0 1 1 *',
    ADMIN_TOKEN: ADMIN,
    DASHBOARD_TOKEN: DASH,
    EXECUTOR_ID: 'api-1',
  };
  service = startServiceProcess(env);
  const ready = await service.waitForLog(isReady, READY_TIMEOUT_MS);
  base = `http://127.0.0.1:${String(ready.healthPort)}`;
}, 90_000);

afterAll(async () => {
  await service?.stop('SIGTERM');
  await simulator.stop();
});

async function call(method: string, p: string, body?: unknown, token: string | null = ADMIN, raw?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${p}`, {
    method,
    headers,
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  return {
    status: res.status,
    allow: res.headers.get('allow'),
    body: text ? (JSON.parse(text) as Record<string, unknown>) : null,
  };
}

/** What must not change after a refused request: the rows and the audit log. */
async function snapshot(): Promise<string> {
  const rows = await query(appUrl, `select name, cron, payload, version, status from schedules order by name`);
  const events = await query(appUrl, `select count(*)::int as n from schedule_events`);
  return JSON.stringify({ rows, events });
}

describe('/api/schedules', () => {
  it('answers every 4xx with the field named, and nothing changes after it', async () => {
    const before = await snapshot();
    const good = { name: 'nightly', cron: '0 2 * * *', payload: { suite: 'nightly' } };
    expect((await call('POST', '/api/schedules', good, null)).status).toBe(401);
    expect((await call('POST', '/api/schedules', good, DASH)).status).toBe(403); // the read-only token never mutates
    expect((await call('POST', '/api/schedules', good, 'wrong')).status).toBe(403);
    const invalid: Array<[unknown, string]> = [
      [{ ...good, cron: '0 5-2 * * *' }, 'cron'],
      [{ ...good, cron: '* * *' }, 'cron'],
      [{ ...good, name: 'Bad_Name' }, 'name'],
      [{ cron: '* * * * *' }, 'name'],
      [{ ...good, timezone: 'Mars/Olympus' }, 'timezone'],
      [{ ...good, payload: { workflow_id: 'x' } }, 'payload'],
      [{ ...good, payload: { triggered_at: 'x' } }, 'payload'],
      [{ ...good, payload: [1, 2] }, 'payload'],
      [{ ...good, payload: { big: 'x'.repeat(17 * 1024) } }, 'payload'],
      [{ ...good, catch_up_window: 'soon' }, 'catch_up_window'],
      [{ ...good, catch_up: 'some' }, 'catch_up'],
      [{ ...good, overlap: 'queue' }, 'overlap'],
      [{ ...good, pause_after_failures: -1 }, 'pause_after_failures'],
      [{ ...good, start_at: 'tomorrow' }, 'start_at'],
      [{ ...good, start_at: '2026-02-01T00:00:00Z', end_at: '2026-01-01T00:00:00Z' }, 'end_at'],
      [{ ...good, colour: 'red' }, 'colour'],
    ];
    for (const [body, field] of invalid) {
      const r = await call('POST', '/api/schedules', body);
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(r.body).toMatchObject({ field });
      expect(typeof r.body?.error).toBe('string');
    }
    expect((await call('POST', '/api/schedules', undefined, ADMIN, '{not json')).body).toMatchObject({ field: 'body' });
    expect(
      (await call('POST', '/api/schedules', undefined, ADMIN, JSON.stringify({ ...good, note: 'x'.repeat(70 * 1024) })))
        .status,
    ).toBe(413);
    expect((await call('GET', '/api/schedules/nope', undefined, DASH)).status).toBe(404);
    expect((await call('PATCH', '/api/schedules/nope', { cron: '* * * * *' })).status).toBe(404);
    expect((await call('DELETE', '/api/schedules/nope')).status).toBe(404);
    expect((await call('POST', '/api/schedules/nope/pause', {})).status).toBe(404);
    expect((await call('POST', '/api/schedules/nope/trigger', {})).status).toBe(404);
    // 405 names the methods of that route (the server's own routes answer Allow: GET, HEAD).
    expect(await call('PUT', '/api/schedules/evaluation-batch', {})).toMatchObject({
      status: 405,
      allow: 'GET, HEAD, PATCH, DELETE',
    });
    expect(await call('DELETE', '/api/schedules', {})).toMatchObject({ status: 405, allow: 'GET, HEAD, POST' });
    expect(await call('GET', '/api/schedules/evaluation-batch/pause', undefined, DASH)).toMatchObject({
      status: 405,
      allow: 'POST',
    });
    expect(await call('POST', '/api/runs', {})).toMatchObject({ status: 405, allow: 'GET, HEAD' });
    expect((await call('GET', '/api/schedules', undefined, null)).status).toBe(401); // reads need the dashboard token
    // A refused PATCH of an existing schedule changes nothing either.
    expect((await call('PATCH', '/api/schedules/evaluation-batch', { cron: '61 * * * *' })).body).toMatchObject({
      field: 'cron',
    });
    expect((await call('PATCH', '/api/schedules/evaluation-batch', { name: 'renamed' })).body).toMatchObject({
      field: 'name',
    });
    expect(await snapshot()).toBe(before);
  });

  it('creates, reads, edits, pauses, resumes, triggers and deletes, one audit row per change', async () => {
    const created = await call('POST', '/api/schedules', {
      name: 'smoke',
      cron: '0 * * * *',
      payload: { suite: 'smoke', batch_size_limit: 5 },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'smoke',
      version: 1,
      managed_by: 'api',
      status: 'ACTIVE',
      overlap: 'skip',
      catch_up: 'latest',
    });
    expect((created.body!.next_slots as string[]).length).toBe(5);
    expect((await call('POST', '/api/schedules', { name: 'smoke', cron: '* * * * *' })).status).toBe(409);
    const list = await call('GET', '/api/schedules', undefined, DASH);
    expect((list.body as unknown as Array<{ name: string }>).map((s) => s.name)).toEqual(['evaluation-batch', 'smoke']);
    const patched = await call('PATCH', '/api/schedules/smoke', { cron: '30 * * * *', note: 'half past' });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      version: 2,
      cron: '30 * * * *',
      note: 'half past',
      payload: { suite: 'smoke', batch_size_limit: 5 },
    });
    expect((await call('POST', '/api/schedules/smoke/pause', { note: 'maintenance' })).body).toMatchObject({
      status: 'PAUSED',
      paused_reason: 'maintenance',
    });
    expect((await call('POST', '/api/schedules/smoke/resume', {})).body).toMatchObject({
      status: 'ACTIVE',
      paused_reason: null,
      version: 4,
    });
    const triggered = await call('POST', '/api/schedules/smoke/trigger', {});
    expect(triggered.status).toBe(202);
    const workflowId = String(triggered.body!.workflow_id);
    expect(workflowId).toMatch(/^sched-smoke-trigger-/);
    // The manual run sends the schedule's payload.
    const deadline = Date.now() + 30_000;
    while (!simulator.calls.some((c) => c.idempotencyKey === workflowId) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(simulator.calls.find((c) => c.idempotencyKey === workflowId)?.body).toMatchObject({
      suite: 'smoke',
      batch_size_limit: 5,
      workflow_id: workflowId,
    });
    expect((await call('DELETE', '/api/schedules/smoke')).status).toBe(204);
    expect((await call('GET', '/api/schedules/smoke', undefined, DASH)).status).toBe(404);
    const events = await query<{ kind: string; details: { by: string; version: number } }>(
      appUrl,
      `select kind, details from schedule_events where schedule_name = 'smoke' order by id`,
    );
    expect(events.map((e) => `${e.kind}:${e.details.version}:${e.details.by}`)).toEqual([
      'created:1:api',
      'updated:2:api',
      'paused:3:api',
      'resumed:4:api',
      'deleted:4:api',
    ]);
  });

  it('refuses every mutation with 403 when ADMIN_TOKEN is not set', async () => {
    const config = loadConfig({ DATABASE_URL: appUrl });
    const appPool = new pg.Pool({ connectionString: appUrl, max: 2 });
    const systemPool = new pg.Pool({ connectionString: systemDatabaseUrlOf(appUrl), max: 2 });
    let server: HttpServer | undefined;
    try {
      server = await startHttpServer(0, { checkReady: async () => ({ ready: true, detail: {} }) });
      server.attachRoutes(createSchedulesApi({ config, appPool, systemPool, logger: createLogger('silent') }));
      const before = await snapshot();
      for (const token of [null, ADMIN, DASH]) {
        const res = await fetch(`http://127.0.0.1:${server.port}/api/schedules`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify({ name: 'x', cron: '* * * * *' }),
        });
        expect(res.status).toBe(403);
      }
      expect(await snapshot()).toBe(before);
    } finally {
      await server?.close();
      await appPool.end();
      await systemPool.end();
    }
  });
});

describe('xyra schedule (CLI)', () => {
  it('exits 2 naming the option for bad input, 1 for unknown names, and changes nothing', async () => {
    const before = await snapshot();
    const bad: Array<[string[], RegExp]> = [
      [['schedule', 'create', 'x1', '--cron', '5-2 * * * *'], /--cron/],
      [['schedule', 'create', 'x1'], /--cron/],
      [['schedule', 'create', 'Bad', '--cron', '* * * * *'], /NAME/],
      [['schedule', 'create', 'x1', '--cron', '* * * * *', '--payload', '{"workflow_id":1}'], /--payload/],
      [['schedule', 'create', 'x1', '--cron', '* * * * *', '--payload', 'nope'], /--payload/],
      [['schedule', 'create', 'x1', '--cron', '* * * * *', '--timezone', 'Nowhere/City'], /--timezone/],
      [['schedule', 'create', 'x1', '--cron', '* * * * *', '--overlap', 'maybe'], /--overlap/],
      [['schedule', 'create', 'x1', '--cron', '* * * * *', '--catch-up-window', '1y'], /--catch-up-window/],
      [['schedule', 'update', 'evaluation-batch', '--pause-after-failures', 'many'], /--pause-after-failures/],
      [['schedule', 'status', '--schedule', 'UPPER'], /--schedule/],
    ];
    const unknown = [
      ['schedule', 'update', 'ghost', '--cron', '* * * * *'],
      ['schedule', 'delete', 'ghost'],
      ['schedule', 'pause', '--schedule', 'ghost'],
    ];
    // One real CLI process per exit code: cli.ts turns a UsageError into exit 2 and any other error into exit 1.
    const [usage, notFound] = await Promise.all([runCli(bad[0]![0], env), runCli(unknown[1]!, env)]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(bad[0]![1]);
    expect(notFound.code).toBe(1);
    expect(notFound.stderr).toMatch(/ghost/);
    // Every case through the command's own code in this process (a CLI process each cost ~1 s of CPU): the
    // error each throws is what cli.ts maps to those exit codes.
    for (const [args, message] of bad) {
      const r = await runOpsCommand(args, env);
      expect(r.error, args.join(' ')).toBeInstanceOf(UsageError);
      expect((r.error as Error).message).toMatch(message);
    }
    for (const args of unknown) {
      const r = await runOpsCommand(args, env);
      expect(r.code, args.join(' ')).toBeUndefined();
      expect(r.error, args.join(' ')).toBeInstanceOf(Error);
      expect(r.error, args.join(' ')).not.toBeInstanceOf(UsageError);
      expect((r.error as Error).message).toMatch(/ghost/);
    }
    expect(await snapshot()).toBe(before);
  }, 300_000);

  it('applies a YAML file idempotently, with --dry-run and --prune', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'xyra-apply-'));
    const file = path.join(dir, 'schedules.yaml');
    writeFileSync(
      file,
      [
        'schedules:',
        '  - name: nightly-full',
        '    cron: "0 2 * * *"',
        '    timezone: Europe/Berlin',
        '    payload: { suite: nightly, batch_size_limit: 500 }',
        '  - name: hourly-smoke',
        '    cron: "@hourly"',
        '    payload: { suite: smoke }',
        '    overlap: buffer_one',
        '',
      ].join('\n'),
    );
    const dry = await runCli(['schedule', 'apply', file, '--dry-run', '--json'], env);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ created: ['nightly-full', 'hourly-smoke'], dry_run: true });
    expect(await query(appUrl, `select name from schedules where name in ('nightly-full', 'hourly-smoke')`)).toEqual(
      [],
    );
    const first = await runCli(['schedule', 'apply', file, '--json'], env);
    expect(JSON.parse(first.stdout)).toMatchObject({
      created: ['nightly-full', 'hourly-smoke'],
      updated: [],
      deleted: [],
    });
    const events = async () =>
      (await query<{ n: number }>(appUrl, `select count(*)::int as n from schedule_events`))[0]!.n;
    const afterFirst = await events();
    const second = await runCli(['schedule', 'apply', file, '--json'], env);
    expect(JSON.parse(second.stdout)).toMatchObject({
      created: [],
      updated: [],
      deleted: [],
      unchanged: ['nightly-full', 'hourly-smoke'],
    });
    expect(await events()).toBe(afterFirst);
    // The same as JSON, one schedule changed and one gone: --prune deletes it (never evaluation-batch).
    const json = path.join(dir, 'schedules.json');
    writeFileSync(
      json,
      JSON.stringify({
        schedules: [
          {
            name: 'nightly-full',
            cron: '0 3 * * *',
            timezone: 'Europe/Berlin',
            payload: { suite: 'nightly', batch_size_limit: 500 },
          },
        ],
      }),
    );
    const pruned = await runCli(['schedule', 'apply', json, '--prune', '--json'], env);
    expect(JSON.parse(pruned.stdout)).toMatchObject({
      created: [],
      updated: ['nightly-full'],
      deleted: ['hourly-smoke'],
    });
    const names = (
      await query<{ name: string; managed_by: string }>(appUrl, `select name, managed_by from schedules order by name`)
    ).map((r) => `${r.name}:${r.managed_by}`);
    expect(names).toEqual(['evaluation-batch:env', 'nightly-full:file']);
    // A bad file: exit 2 naming the entry and field, nothing applied.
    writeFileSync(file, 'schedules:\n  - name: ok-one\n    cron: "* * * * *"\n  - name: bad\n    cron: "0 0 31 2 *"\n');
    const bad = await runCli(['schedule', 'apply', file], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/schedules\[1\]\.cron/);
    expect(await query(appUrl, `select name from schedules where name = 'ok-one'`)).toEqual([]);
  }, 300_000);
});
