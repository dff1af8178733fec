// The Xyra client against a real HTTP server (the simulator, plus a raw node:http server for the
// hostile cases the simulator cannot produce). One test per row of the API contract.
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  backoffDelayMs,
  callEvaluationBatch,
  endpointUrl,
  MAX_RESPONSE_BYTES,
  parseRetryAfter,
  type AttemptOutcome,
  type XyraClientOptions,
  type XyraRequest,
} from '../src/evaluation/xyraClient.js';
import { defaultCounts, XyraSimulator } from '../src/simulator/server.js';

const TOKEN = 'tok-Sup3rS3cret-value';
const sim = new XyraSimulator({ token: TOKEN });
let opts: XyraClientOptions;
let seq = 0;

function batch(overrides: Partial<XyraRequest> = {}): XyraRequest {
  seq += 1;
  return {
    workflow_id: `sched-evaluation-batch-test-${seq}`,
    triggered_at: '2025-01-01T00:02:00.000Z',
    batch_size_limit: 30,
    ...overrides,
  };
}

/** A throwaway node:http server for responses the simulator deliberately cannot produce. */
async function withRawServer<T>(handler: RequestListener, fn: (baseUrl: string) => Promise<T>): Promise<T> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  try {
    return await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

beforeAll(async () => {
  opts = { baseUrl: await sim.start(), token: TOKEN, timeoutMs: 2_000, connectTimeoutMs: 1_000 };
});
afterAll(() => sim.stop());
beforeEach(() => sim.reset());

describe('callEvaluationBatch: contract rows', () => {
  it('200 with counts → completed with those counts', async () => {
    const req = batch({ batch_size_limit: 7 });
    const out = await callEvaluationBatch(opts, req);
    expect(out).toMatchObject({ kind: 'completed', statusCode: 200, ...defaultCounts(req.workflow_id, 7) });
    expect(out.bodyBytes).toBeGreaterThan(0);
    expect(out.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('201 with counts → completed', async () => {
    sim.inject({
      type: 'status',
      status: 201,
      count: 1,
      body: { processed: 3, succeeded: 2, failed: 1, extra: 'ignored' },
    });
    const out = await callEvaluationBatch(opts, batch());
    expect(out).toEqual({
      kind: 'completed',
      processed: 3,
      succeeded: 2,
      failed: 1,
      statusCode: 201,
      bodyBytes: expect.any(Number),
      durationMs: expect.any(Number),
    });
  });

  it('202 → triggered with zero counts when none are given', async () => {
    sim.inject({ type: 'accepted' });
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({
      kind: 'triggered',
      statusCode: 202,
      processed: 0,
      succeeded: 0,
      failed: 0,
    });
  });

  it('202 → triggered with counts when the body has them', async () => {
    sim.inject({ type: 'status', status: 202, count: 1, body: { processed: 9, succeeded: 8, failed: 1 } });
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({
      kind: 'triggered',
      processed: 9,
      succeeded: 8,
      failed: 1,
    });
  });

  it('202 with an empty body → triggered', async () => {
    const out = await withRawServer(
      (_req, res) => res.writeHead(202).end(),
      (baseUrl) => callEvaluationBatch({ ...opts, baseUrl }, batch()),
    );
    expect(out).toMatchObject({ kind: 'triggered', statusCode: 202, processed: 0, bodyBytes: 0 });
  });

  it('409 → skipped with the message from the body', async () => {
    sim.inject({ type: 'status', status: 409, count: 1, body: { status: 'skipped', message: 'Run 41 still going' } });
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({
      kind: 'skipped',
      statusCode: 409,
      message: 'Run 41 still going',
    });
  });

  it('409 without a message → skipped with the default message', async () => {
    sim.inject({ type: 'status', status: 409, count: 1, body: {} });
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({
      kind: 'skipped',
      message: 'Batch evaluation already in progress',
    });
  });

  it('409 from the in-progress fault → skipped', async () => {
    sim.inject({ type: 'inProgress' });
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({
      kind: 'skipped',
      statusCode: 409,
      message: 'Batch evaluation already in progress',
    });
  });

  it('2xx {"status":"skipped"} → skipped with that message', async () => {
    sim.inject({ type: 'skippedBody', message: 'Nothing new since last run' });
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({
      kind: 'skipped',
      statusCode: 200,
      message: 'Nothing new since last run',
    });
  });

  it.each([408, 429, 500, 502, 503, 504])('%i → retryable', async (status) => {
    sim.inject({ type: 'status', status, count: 1 });
    const out = await callEvaluationBatch(opts, batch());
    expect(out).toMatchObject({ kind: 'retryable', statusCode: status });
    expect(out.kind === 'retryable' && out.reason).toContain(`HTTP ${status}`);
    expect(out).not.toHaveProperty('retryAfterMs');
  });

  it('Retry-After in seconds → retryAfterMs', async () => {
    sim.inject({ type: 'status', status: 429, count: 1, retryAfterSeconds: 7 });
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({
      kind: 'retryable',
      statusCode: 429,
      retryAfterMs: 7_000,
    });
  });

  it('Retry-After as an HTTP-date → retryAfterMs until that date', async () => {
    const out = await withRawServer(
      (_req, res) => res.writeHead(503, { 'retry-after': new Date(Date.now() + 30_000).toUTCString() }).end(),
      (baseUrl) => callEvaluationBatch({ ...opts, baseUrl }, batch()),
    );
    expect(out.kind).toBe('retryable');
    const ms = out.kind === 'retryable' ? out.retryAfterMs : undefined;
    // toUTCString drops milliseconds, and a little time passes before parsing.
    expect(ms).toBeGreaterThan(28_000);
    expect(ms).toBeLessThanOrEqual(30_000);
  });

  it('400 (request rejected by the API) → fatal, with the server message', async () => {
    const out = await callEvaluationBatch(opts, batch({ batch_size_limit: 0 }));
    expect(out).toMatchObject({ kind: 'fatal', statusCode: 400 });
    expect(out.kind === 'fatal' && out.reason).toMatch(/^HTTP 400: .*batch_size_limit/);
  });

  it('401 → fatal (missing token)', async () => {
    const { token: _omit, ...noToken } = opts;
    expect(await callEvaluationBatch(noToken, batch())).toMatchObject({ kind: 'fatal', statusCode: 401 });
  });

  it('401 → fatal (unauthorized fault)', async () => {
    sim.inject({ type: 'unauthorized' });
    // The simulator's 401 echoes the credentials; the client scrubs the token from the reason.
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({
      kind: 'fatal',
      statusCode: 401,
      reason: 'HTTP 401: credentials rejected: Bearer [REDACTED]',
    });
  });

  it.each([403, 404, 422])('%i → fatal', async (status) => {
    sim.inject({ type: 'status', status, count: 1 });
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({ kind: 'fatal', statusCode: status });
  });

  it('404 for a wrong path prefix → fatal', async () => {
    expect(await callEvaluationBatch({ ...opts, baseUrl: `${opts.baseUrl}/nope` }, batch())).toMatchObject({
      kind: 'fatal',
      statusCode: 404,
    });
  });

  it('3xx → fatal, the redirect is not followed', async () => {
    sim.inject({ type: 'status', status: 307, count: 1 });
    expect(await callEvaluationBatch(opts, batch())).toMatchObject({ kind: 'fatal', statusCode: 307 });
    expect(sim.calls).toHaveLength(1);
  });

  it('200 with a malformed body → fatal, saying so', async () => {
    sim.inject({ type: 'malformed' });
    const out = await callEvaluationBatch(opts, batch());
    expect(out).toMatchObject({ kind: 'fatal', statusCode: 200 });
    expect(out.kind === 'fatal' && out.reason).toMatch(/^malformed response body: /);
  });

  it('200 with an empty body → fatal', async () => {
    const out = await withRawServer(
      (_req, res) => res.writeHead(200).end(),
      (baseUrl) => callEvaluationBatch({ ...opts, baseUrl }, batch()),
    );
    expect(out).toMatchObject({ kind: 'fatal', reason: 'malformed response body: empty body' });
  });

  it('200 with a schema-violating body → fatal, naming the field', async () => {
    sim.inject({ type: 'schemaViolation' });
    const out = await callEvaluationBatch(opts, batch());
    expect(out).toMatchObject({ kind: 'fatal', statusCode: 200 });
    expect(out.kind === 'fatal' && out.reason).toMatch(/^response body does not match schema: processed: /);
  });

  it('200 with negative or fractional counts → fatal', async () => {
    sim.inject({ type: 'status', status: 200, count: 1, body: { processed: 2.5, succeeded: -1, failed: 0 } });
    const out = await callEvaluationBatch(opts, batch());
    expect(out.kind === 'fatal' && out.reason).toMatch(/processed: .*succeeded: /);
  });

  it('200 with a body over the cap → fatal, without reading it all', async () => {
    sim.inject({ type: 'status', status: 200, count: 1, body: 'x'.repeat(2 * MAX_RESPONSE_BYTES) });
    const out = await callEvaluationBatch(opts, batch());
    expect(out).toMatchObject({ kind: 'fatal', reason: `response body exceeds ${MAX_RESPONSE_BYTES} bytes` });
    expect(out.bodyBytes).toBeGreaterThan(MAX_RESPONSE_BYTES);
    expect(out.bodyBytes).toBeLessThan(2 * MAX_RESPONSE_BYTES);
  });

  it('no answer → retryable timeout within about timeoutMs', async () => {
    sim.inject({ type: 'hang' });
    const t0 = Date.now();
    const out = await callEvaluationBatch({ ...opts, timeoutMs: 300 }, batch());
    const elapsed = Date.now() - t0;
    expect(out).toMatchObject({ kind: 'retryable', statusCode: null, reason: 'timeout after 300 ms' });
    expect(elapsed).toBeGreaterThanOrEqual(280); // a lower bound: a loaded machine cannot make it early
    // A hang never answers: returning at all is the timeout; the bound only tells 300 ms from a default of minutes.
    expect(elapsed).toBeLessThan(30_000);
  });

  it('a body trickling in forever → retryable timeout (the overall timeout covers the body read)', async () => {
    const timers: NodeJS.Timeout[] = [];
    const t0 = Date.now();
    const out = await withRawServer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        // A byte every 50 ms: never idle long enough for a per-read (body) timeout to fire.
        timers.push(setInterval(() => res.write(' '), 50));
      },
      (baseUrl) => callEvaluationBatch({ ...opts, baseUrl, timeoutMs: 300 }, batch()),
    ).finally(() => timers.forEach(clearInterval));
    expect(out).toMatchObject({ kind: 'retryable', statusCode: 200, reason: 'timeout after 300 ms' });
    expect(out.bodyBytes).toBeGreaterThan(0);
    expect(Date.now() - t0).toBeLessThan(30_000); // the body never ends: returning at all is the overall timeout
  });

  it('connection refused → retryable', async () => {
    const closed = new XyraSimulator();
    const baseUrl = await closed.start();
    await closed.stop();
    const out = await callEvaluationBatch({ ...opts, baseUrl }, batch());
    expect(out).toMatchObject({
      kind: 'retryable',
      statusCode: null,
      bodyBytes: 0,
      reason: 'connection error (ECONNREFUSED)',
    });
  });

  it('connection dropped by the server → retryable', async () => {
    const out = await withRawServer(
      (req) => req.socket.destroy(),
      (baseUrl) => callEvaluationBatch({ ...opts, baseUrl }, batch()),
    );
    expect(out).toMatchObject({ kind: 'retryable', statusCode: null });
  });

  it('an unusable base URL → fatal, not a throw', async () => {
    expect(await callEvaluationBatch({ ...opts, baseUrl: 'not a url' }, batch())).toMatchObject({
      kind: 'fatal',
      statusCode: null,
    });
    expect(await callEvaluationBatch({ ...opts, baseUrl: 'ftp://example.com' }, batch())).toMatchObject({
      kind: 'fatal',
    });
  });
});

describe('callEvaluationBatch: request', () => {
  it('POSTs the JSON body with content-type, idempotency-key = workflow_id and the bearer token', async () => {
    const req = batch();
    await callEvaluationBatch(opts, req);
    expect(sim.calls).toHaveLength(1);
    const call = sim.calls[0]!;
    expect(call).toMatchObject({
      method: 'POST',
      path: '/v1/evaluation-batches',
      idempotencyKey: req.workflow_id,
      authorization: `Bearer ${TOKEN}`,
      body: req,
    });
    expect(call.headers['content-type']).toBe('application/json');
  });

  it('sends no authorization header when no token is set', async () => {
    const open = new XyraSimulator();
    try {
      const { token: _omit, ...noToken } = opts;
      const out = await callEvaluationBatch({ ...noToken, baseUrl: await open.start() }, batch());
      expect(out.kind).toBe('completed');
      expect(open.calls[0]?.authorization).toBeNull();
      expect(open.calls[0]?.headers).not.toHaveProperty('authorization');
    } finally {
      await open.stop();
    }
  });

  it('an empty token counts as no token', async () => {
    await callEvaluationBatch({ ...opts, token: '' }, batch());
    expect(sim.calls[0]?.authorization).toBeNull();
  });

  it('a base URL with a trailing slash reaches the same endpoint', async () => {
    expect(await callEvaluationBatch({ ...opts, baseUrl: `${opts.baseUrl}/` }, batch())).toMatchObject({
      kind: 'completed',
    });
    expect(sim.calls[0]?.path).toBe('/v1/evaluation-batches');
  });

  it('a base URL with a path prefix keeps the prefix', async () => {
    const paths: string[] = [];
    await withRawServer(
      (req, res) => {
        paths.push(req.url ?? '');
        res.writeHead(200).end('{"processed":0,"succeeded":0,"failed":0}');
      },
      async (baseUrl) => {
        await callEvaluationBatch({ ...opts, baseUrl: `${baseUrl}/xyra/api` }, batch());
        await callEvaluationBatch({ ...opts, baseUrl: `${baseUrl}/xyra/api/` }, batch());
      },
    );
    expect(paths).toEqual(['/xyra/api/v1/evaluation-batches', '/xyra/api/v1/evaluation-batches']);
  });

  it('endpointUrl joins paths and drops query/fragment', () => {
    expect(endpointUrl('http://h:1')?.href).toBe('http://h:1/v1/evaluation-batches');
    expect(endpointUrl('https://h/p//')?.href).toBe('https://h/p/v1/evaluation-batches');
    expect(endpointUrl('http://h/p?x=1#f')?.href).toBe('http://h/p/v1/evaluation-batches');
    expect(endpointUrl('h:1')).toBeUndefined();
  });
});

describe('callEvaluationBatch: the token never leaks', () => {
  // Servers that echo the token back in every place that can reach an outcome field.
  const echoes: Array<[string, () => void]> = [
    ['500 message', () => sim.inject({ type: 'status', status: 500, count: 1, body: { message: `bad ${TOKEN}` } })],
    [
      '403 error',
      () => sim.inject({ type: 'status', status: 403, count: 1, body: { error: `token ${TOKEN} revoked` } }),
    ],
    ['409 message', () => sim.inject({ type: 'status', status: 409, count: 1, body: { message: TOKEN } })],
    ['skipped message', () => sim.inject({ type: 'skippedBody', message: `skip ${TOKEN}` })],
    [
      '202 message',
      () => sim.inject({ type: 'status', status: 202, count: 1, body: { status: 'accepted', message: TOKEN } }),
    ],
    ['schema violation', () => sim.inject({ type: 'status', status: 200, count: 1, body: { processed: TOKEN } })],
    ['timeout', () => sim.inject({ type: 'hang' })],
    ['success', () => undefined],
  ];

  it.each(echoes)('%s', async (_name, arrange) => {
    arrange();
    const out: AttemptOutcome = await callEvaluationBatch({ ...opts, timeoutMs: 300 }, batch());
    expect(sim.calls[0]?.authorization).toBe(`Bearer ${TOKEN}`); // the token really was in play
    expect(JSON.stringify(out)).not.toContain(TOKEN);
    expect(JSON.stringify(out)).not.toContain('Sup3rS3cret');
  });

  it('connection errors do not carry it either', async () => {
    const out = await callEvaluationBatch({ ...opts, baseUrl: 'http://127.0.0.1:1' }, batch());
    expect(out.kind).toBe('retryable');
    expect(JSON.stringify(out)).not.toContain(TOKEN);
  });
});

describe('backoffDelayMs', () => {
  it('doubles per attempt (equal jitter: between half and all of the step)', () => {
    const low = [1, 2, 3, 4, 5].map((a) => backoffDelayMs(a, 1_000, 60_000, undefined, () => 0));
    const high = [1, 2, 3, 4, 5].map((a) => backoffDelayMs(a, 1_000, 60_000, undefined, () => 1));
    expect(low).toEqual([500, 1_000, 2_000, 4_000, 8_000]);
    expect(high).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
  });

  it('is capped at maxMs, even for huge attempt numbers', () => {
    expect(backoffDelayMs(7, 1_000, 30_000, undefined, () => 1)).toBe(30_000);
    expect(backoffDelayMs(5_000, 1_000, 30_000, undefined, () => 1)).toBe(30_000);
    expect(backoffDelayMs(5_000, 1_000, 30_000, undefined, () => 0)).toBe(15_000);
  });

  it('is jittered with the default random source, within bounds', () => {
    const samples = Array.from({ length: 200 }, () => backoffDelayMs(3, 1_000, 60_000));
    for (const s of samples) {
      expect(s).toBeGreaterThanOrEqual(2_000);
      expect(s).toBeLessThanOrEqual(4_000);
    }
    expect(new Set(samples).size).toBeGreaterThan(10);
  });

  it('honours Retry-After exactly, capped at maxMs', () => {
    expect(backoffDelayMs(1, 1_000, 60_000, 7_000, () => 1)).toBe(7_000);
    expect(backoffDelayMs(4, 1_000, 60_000, 250, () => 1)).toBe(250);
    expect(backoffDelayMs(1, 1_000, 60_000, 0)).toBe(0);
    expect(backoffDelayMs(1, 1_000, 60_000, 3_600_000)).toBe(60_000);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');

  it('reads delay-seconds', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter(['5', '9'], now)).toBe(5_000);
  });

  it('reads an HTTP-date relative to now, past dates meaning now', () => {
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:59:00 GMT', now)).toBe(0);
  });

  it('ignores missing or invalid values', () => {
    for (const v of [undefined, '', '-3', '1.5', 'soon', []]) expect(parseRetryAfter(v, now)).toBeUndefined();
  });
});
