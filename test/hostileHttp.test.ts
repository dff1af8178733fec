// Hostile and broken HTTP against a real service process: every request gets an HTTP answer, the process
// stays up, and /healthz answers after each. 5xx answers carry an error id, never SQL or a stack; the detail is
// in the log under that id. One service process for the whole file (PORT=0, no DASHBOARD_TOKEN, HOST default).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDashboardFiles } from '../src/ops/dashboard/static.js';
import { startHttpServer } from '../src/ops/httpServer.js';
import { XyraSimulator } from '../src/simulator/server.js';
import { createMigratedTestDatabase, query } from './support/database.js';
import { rawRequest } from './support/rawHttp.js';
import { isReady, READY_TIMEOUT_MS, startServiceProcess, type ServiceProcess } from './support/serviceProcess.js';

let simulator: XyraSimulator;
let service: ServiceProcess;
let appUrl: string;
let port: number;

beforeAll(async () => {
  simulator = new XyraSimulator();
  const apiUrl = await simulator.start();
  appUrl = await createMigratedTestDatabase('hostile');
  service = startServiceProcess({
    DATABASE_URL: appUrl,
    XYRA_API_URL: apiUrl,
    BATCH_CRON: '0 0 1 1 *',
    EXECUTOR_ID: 'hostile-test',
    SHUTDOWN_TIMEOUT_MS: '5000',
  });
  const ready = await service.waitForLog(isReady, READY_TIMEOUT_MS);
  port = Number(ready.healthPort);
});

afterAll(async () => {
  await service?.stop();
  await simulator?.stop();
});

const get = (p: string, headers: Record<string, string> = {}) => fetch(`http://127.0.0.1:${port}${p}`, { headers });

async function expectStillUp(): Promise<void> {
  expect(service.child.exitCode).toBeNull();
  const r = await get('/healthz');
  expect(r.status).toBe(200);
}

describe('requests that do not parse', () => {
  for (const target of ['///', '//[', '//%', '//[::1', '//user@/x']) {
    it(`GET ${target} answers 400 and the service stays up`, async () => {
      const r = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      expect(r.status).toBe(400);
      expect(r.text).toContain('unparsable request target');
      await expectStillUp();
    });
  }

  it('a garbage request line, method or header answers 400 / 405 / 431', async () => {
    expect((await rawRequest(port, 'GET / HTTP/x.y\r\n\r\n')).status).toBe(400);
    expect((await rawRequest(port, '\u0000\u0001 \r\n\r\n')).status).toBe(405);
    const big = await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(big.status).toBe(431);
    await expectStillUp();
  });
});

describe('methods and bodies', () => {
  it('answers an unknown method with 405 and Allow', async () => {
    for (const method of ['POST', 'DELETE', 'PUT', 'OPTIONS', 'PATCH']) {
      const r = await fetch(`http://127.0.0.1:${port}/api/runs`, { method });
      expect({ method, status: r.status }).toEqual({ method, status: 405 });
      expect(r.headers.get('allow')).toBe('GET, HEAD');
    }
    // A method Node's parser does not know at all.
    const raw = await rawRequest(port, 'FROBNICATE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(raw.status).toBe(405);
    expect(raw.text.toLowerCase()).toContain('allow: get, head');
    await expectStillUp();
  });

  it('answers a body over 64 KB with 413, declared or chunked', async () => {
    const declared = await rawRequest(
      port,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n`,
    );
    expect(declared.status).toBe(413);
    const chunk = 'x'.repeat(16 * 1024);
    const chunks = Array.from({ length: 6 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('');
    const chunked = await rawRequest(
      port,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`,
    );
    expect(chunked.status).toBe(413);
    // A small body on a GET is read and dropped: the request is answered as usual.
    const small = await rawRequest(
      port,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`,
    );
    expect(small.status).toBe(200);
    await expectStillUp();
  });
});

describe('slow and flooding clients', () => {
  it('closes a connection that never finishes its headers (408)', async () => {
    const r = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', { waitMs: 45_000 });
    expect(r.ended).toBe('closed');
    expect(r.status).toBe(408);
    await expectStillUp();
  });

  it('drops connections beyond the cap and keeps serving once they go', async () => {
    const net = await import('node:net');
    const sockets = await Promise.all(
      Array.from(
        { length: 300 },
        () =>
          new Promise<{ socket: import('node:net').Socket; closed: Promise<boolean> }>((resolve) => {
            const socket = net.connect(port, '127.0.0.1');
            const closed = new Promise<boolean>((c) => socket.on('close', () => c(true)));
            socket.on('error', () => undefined);
            socket.on('connect', () => resolve({ socket, closed }));
          }),
      ),
    );
    // The server closes the ones over its cap at accept; wait for that (generous bound), never a fixed delay.
    const closedCount = async () =>
      (await Promise.all(sockets.map((s) => Promise.race([s.closed, Promise.resolve(false)])))).filter(Boolean).length;
    const deadline = Date.now() + 20_000;
    while ((await closedCount()) < 300 - 256 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await closedCount()).toBe(300 - 256);
    for (const s of sockets) s.socket.destroy();
    await Promise.all(sockets.map((s) => s.closed));
    await expectStillUp();
  });
});

describe('answers that leak nothing', () => {
  it('a failing /api query answers 500 with an error id only; the log holds the detail under that id', async () => {
    await query(appUrl, 'alter table errors rename to errors_moved');
    let body: { error: string; error_id: string };
    let text: string;
    try {
      const r = await get('/api/errors');
      text = await r.text();
      expect(r.status).toBe(500);
      body = JSON.parse(text) as typeof body;
    } finally {
      await query(appUrl, 'alter table errors_moved rename to errors');
    }
    expect(body).toEqual({ error: 'internal error', error_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(text).not.toMatch(/relation|select|errors_moved|\bat /i);
    const logged = await service.waitForLog((l) => l.errorId === body.error_id);
    expect(String(logged.err)).toContain('relation "errors" does not exist');
    await expectStillUp();
  });

  it('/api/errors withholds dataset records when no DASHBOARD_TOKEN is set, and says so', async () => {
    await query(appUrl, `insert into errors (error_key, message) values ($1, $2)`, [
      'hostile@abc#1',
      { error: 'invalid record: id', kind: 'invalid_record', task_key: 'hostile#1', record: { ssn: '078-05-1120' } },
    ]);
    const r = await get('/api/errors');
    const text = await r.text();
    expect(r.status).toBe(200);
    expect(text).not.toContain('078-05-1120');
    const rows = JSON.parse(text) as Array<{ record_withheld: boolean; message: { record: unknown; kind: string } }>;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      record_withheld: true,
      message: { kind: 'invalid_record', record: expect.stringContaining('DASHBOARD_TOKEN') },
    });
  });

  it('refuses / and /api for a Host name other than loopback (DNS rebinding); health stays open', async () => {
    expect((await rawRequest(port, 'GET /api/errors HTTP/1.1\r\nHost: evil.example:3000\r\n\r\n')).status).toBe(403);
    expect((await rawRequest(port, 'GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n')).status).toBe(403);
    expect((await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n')).status).toBe(200);
    expect((await rawRequest(port, `GET /api/runs HTTP/1.1\r\nHost: localhost:${port}\r\n\r\n`)).status).toBe(200);
  });
});

describe('every /api answer is bounded', () => {
  it('caps since at HISTORY_RETENTION (a huge since was a 500) and limit at its maximum', async () => {
    for (const since of ['36500d', '99999999999999999999d']) {
      const r = await get(`/api/stats?since=${since}`);
      expect({ since, status: r.status }).toEqual({ since, status: 200 });
      const body = (await r.json()) as { since: string; until: string };
      // HISTORY_RETENTION defaults to 30 d.
      expect(Date.parse(body.until) - Date.parse(body.since)).toBe(30 * 86_400_000);
    }
    const runs = await get('/api/runs?limit=99999999999999999999999');
    expect(runs.status).toBe(200);
  });
});

describe('a non-loopback HOST without DASHBOARD_TOKEN', () => {
  it('logs a SECURITY warning at start-up', async () => {
    const other = startServiceProcess({
      DATABASE_URL: appUrl,
      HOST: '0.0.0.0',
      EXECUTOR_ID: 'hostile-open',
      BATCH_CRON: '0 0 1 1 *',
    });
    try {
      const warning = await other.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('SECURITY:'), 60_000);
      expect(warning).toMatchObject({ level: 'warn', host: '0.0.0.0' });
      expect(warning.msg).toContain('without DASHBOARD_TOKEN');
    } finally {
      await other.stop();
    }
    // A loopback HOST (this file's service) says nothing of the kind.
    expect(service.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('SECURITY:'))).toBe(false);
  });
});

describe('fuzz: seeded random request lines and headers over raw sockets', () => {
  it('never stops the service and never answers 5xx', async () => {
    let seed = 1234567;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const METHODS = [
      'GET',
      'HEAD',
      'POST',
      'PUT',
      'DELETE',
      'OPTIONS',
      'TRACE',
      'CONNECT',
      'PATCH',
      'G\u00e9T',
      'get',
      '',
      'GET GET',
      'PRI',
    ];
    const PIECES = [
      '/',
      '//',
      '/api/',
      'api',
      'runs',
      'stats',
      'errors',
      'schedule',
      'datasets',
      '?',
      '&',
      '=',
      'limit',
      'since',
      '%',
      '%zz',
      '%00',
      '[',
      ']',
      '@',
      ':',
      '#',
      '..',
      '\\',
      '\u00ff',
      '\t',
      '*',
      'http://',
      'healthz',
      '999999999999999999999',
      '-1',
      '36500d',
    ];
    const VERSIONS = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9', '', 'http/1.1'];
    const HEADERS = [
      'Host: 127.0.0.1',
      'Host: evil.example',
      'Host:',
      'Content-Length: 5',
      'Content-Length: -1',
      'Content-Length: 99999999999',
      'Content-Length: 1, 2',
      'Transfer-Encoding: chunked',
      'Transfer-Encoding: gzip, chunked',
      'Authorization: Bearer ',
      'Authorization: Bearer \u0000',
      'Expect: 100-continue',
      'Connection: upgrade',
      'Upgrade: websocket',
      'X-Bad Header: 1',
      ': empty-name',
      'Cookie: ' + 'c'.repeat(4_000),
    ];
    const cases = Array.from({ length: 300 }, () => {
      const target = Array.from({ length: 1 + Math.floor(rand() * 6) }, () => pick(PIECES)).join('');
      const headers = Array.from({ length: Math.floor(rand() * 5) }, () => pick(HEADERS));
      const body = rand() < 0.3 ? 'x'.repeat(Math.floor(rand() * 200)) : '';
      return Buffer.from(
        `${pick(METHODS)} ${target} ${pick(VERSIONS)}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`,
        'latin1',
      );
    });
    const statuses: number[] = [];
    for (let i = 0; i < cases.length; i += 25) {
      const answers = await Promise.all(cases.slice(i, i + 25).map((c) => rawRequest(port, c, { waitMs: 3_000 })));
      for (const a of answers) if (a.status !== undefined) statuses.push(a.status);
    }
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(statuses.length).toBeGreaterThan(cases.length / 2);
    await expectStillUp();
    expect((await get('/readyz')).status).toBe(200);
  });
});

describe('dashboard files', () => {
  it('are read at start-up: a missing file fails start-up with one line naming it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'xyra-dash-'));
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
    expect(() => loadDashboardFiles(dir)).toThrow(/^dashboard file .*style\.css cannot be read \(ENOENT\)/);
    await expect(
      startHttpServer(0, { checkReady: async () => ({ ready: true, detail: {} }), dashboardDir: dir }),
    ).rejects.toThrow(/style\.css/);
  });
});

describe('ALLOWED_HOSTS', () => {
  it('when set, / and /api answer only those names (any port, any case); health answers every name', async () => {
    const server = await startHttpServer(0, {
      checkReady: async () => ({ ready: true, detail: {} }),
      allowedHosts: ['sched.example.com', '::1'],
    });
    try {
      const status = async (p: string, host: string) =>
        (await rawRequest(server.port, `GET ${p} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).status;
      expect(await status('/', 'Sched.Example.com:8443')).toBe(200);
      expect(await status('/', '[::1]:3000')).toBe(200);
      expect(await status('/', '127.0.0.1')).toBe(403);
      expect(await status('/api/runs', 'evil.example')).toBe(403);
      expect(await status('/healthz', 'evil.example')).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('unset on a non-loopback HOST: every name is accepted (the service cannot know its public name)', async () => {
    const server = await startHttpServer(0, { checkReady: async () => ({ ready: true, detail: {} }), host: '0.0.0.0' });
    try {
      expect(
        (await rawRequest(server.port, 'GET / HTTP/1.1\r\nHost: sched.example.com\r\nConnection: close\r\n\r\n'))
          .status,
      ).toBe(200);
    } finally {
      await server.close();
    }
  });
});
