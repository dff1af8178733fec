// The Xyra Analytics simulator over real HTTP: default answers, idempotency, faults, auth and control endpoints.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defaultCounts, runStandaloneSimulator, XyraSimulator, type RecordedCall } from '../src/simulator/server.js';

/** `p`'s value, or 'timeout' when it has not settled within `ms` (a generous bound, not a measurement). */
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);

const TOKEN = 'sim-t0ken-abc';
const sim = new XyraSimulator({ token: TOKEN });
let base: string;

type Answer = { status: number; text: string; json: unknown; headers: Headers };

async function call(
  body: unknown,
  { key = 'key-1', token = TOKEN as string | null, path = '/v1/evaluation-batches', method = 'POST', url = base } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) headers['idempotency-key'] = key;
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${url}${path}`, {
    method,
    headers,
    ...(method === 'GET' ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

const req = (workflow_id = 'wf-a', batch_size_limit = 30) => ({
  workflow_id,
  triggered_at: '2025-01-01T00:02:00.000Z',
  batch_size_limit,
});

beforeAll(async () => {
  base = await sim.start();
});
afterAll(() => sim.stop());
beforeEach(() => sim.reset());

describe('XyraSimulator: default answers', () => {
  it('start() resolves to the base URL, also exposed as url', () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(sim.url).toBe(base);
    expect(() => new XyraSimulator().url).toThrow(/not started/);
  });

  it('GET /healthz → 200', async () => {
    expect(await call(undefined, { path: '/healthz', method: 'GET' })).toMatchObject({
      status: 200,
      json: { status: 'ok' },
    });
  });

  it('answers 200 with deterministic counts within 1..batch_size_limit', async () => {
    const a = await call(req('wf-a', 10), { key: 'k-a' });
    const again = await call(req('wf-a', 10), { key: 'k-a2' });
    expect(a.status).toBe(200);
    expect(a.json).toEqual(again.json);
    expect(a.json).toEqual(defaultCounts('wf-a', 10));
    for (let i = 0; i < 200; i++) {
      const c = defaultCounts(`wf-${i}`, 10);
      expect(c.processed).toBeGreaterThanOrEqual(1);
      expect(c.processed).toBeLessThanOrEqual(10);
      expect(c.failed).toBeGreaterThanOrEqual(0);
      expect(c.failed).toBeLessThanOrEqual(3);
      expect(c.succeeded + c.failed).toBe(c.processed);
    }
  });

  it('the seed changes the counts', () => {
    const ids = Array.from({ length: 20 }, (_, i) => `wf-${i}`);
    expect(ids.map((id) => defaultCounts(id, 30, 1))).not.toEqual(ids.map((id) => defaultCounts(id, 30, 2)));
  });

  it('a repeated idempotency key returns the first response, and both calls are recorded', async () => {
    const first = await call(req('wf-dup'), { key: 'same' });
    sim.inject({ type: 'status', status: 503, count: 1 });
    expect((await call(req('wf-dup'), { key: 'same' })).status).toBe(503); // faults are not stored
    const replay = await call(req('wf-other', 1), { key: 'same' });
    expect(replay).toMatchObject({ status: 200, json: first.json });
    expect(sim.calls.map((c) => c.status)).toEqual([200, 503, 200]);
  });

  it('rejects an invalid body with 400 and a message', async () => {
    const bad = await call({ workflow_id: '', triggered_at: 'yesterday', batch_size_limit: 0 });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json)).toMatch(/workflow_id.*triggered_at.*batch_size_limit/);
    expect((await call('not an object')).status).toBe(400);
  });

  it('404 for other paths, 405 for other methods', async () => {
    expect((await call(req(), { path: '/v2/evaluation-batches' })).status).toBe(404);
    expect((await call(undefined, { method: 'GET' })).status).toBe(405);
  });
});

describe('XyraSimulator: auth', () => {
  it('401 without the bearer token or with a wrong one; rejected calls do not consume faults', async () => {
    sim.inject({ type: 'accepted' });
    expect((await call(req(), { token: null })).status).toBe(401);
    expect((await call(req(), { token: 'wrong' })).status).toBe(401);
    expect((await call(req())).status).toBe(202);
  });

  it('keeps the token only in the authorization field of recorded calls', async () => {
    await call(req(), { key: 'k-rec' });
    const recorded = sim.calls[0]!;
    expect(recorded).toMatchObject({
      method: 'POST',
      path: '/v1/evaluation-batches',
      idempotencyKey: 'k-rec',
      authorization: `Bearer ${TOKEN}`,
      body: req(),
      status: 200,
    });
    expect(recorded.headers.authorization).toBe('[REDACTED]');
    expect(JSON.stringify({ ...recorded, authorization: null })).not.toContain(TOKEN);
  });
});

describe('XyraSimulator: faults', () => {
  it('are consumed FIFO, count calls each, then back to normal', async () => {
    sim.inject({ type: 'status', status: 503, count: 2, retryAfterSeconds: 3 });
    sim.inject({ type: 'inProgress' });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await call(req(`wf-${i}`), { key: `k-${i}` })).status);
    expect(statuses).toEqual([503, 503, 409, 200]);
  });

  it('status: given status, Retry-After and body', async () => {
    sim.inject({ type: 'status', status: 429, count: 1, retryAfterSeconds: 5, body: { message: 'slow down' } });
    const a = await call(req());
    expect(a).toMatchObject({ status: 429, json: { message: 'slow down' } });
    expect(a.headers.get('retry-after')).toBe('5');
  });

  it('shapes of the canned faults', async () => {
    sim.inject({ type: 'inProgress' });
    sim.inject({ type: 'accepted' });
    sim.inject({ type: 'skippedBody', message: 'nothing to do' });
    sim.inject({ type: 'malformed' });
    sim.inject({ type: 'schemaViolation' });
    sim.inject({ type: 'unauthorized' });
    const answers: Answer[] = [];
    for (let i = 0; i < 6; i++) answers.push(await call(req()));
    expect(answers.map((a) => [a.status, a.json])).toEqual([
      [409, { status: 'skipped', message: 'Batch evaluation already in progress' }],
      [202, { status: 'accepted' }],
      [200, { status: 'skipped', message: 'nothing to do' }],
      [200, undefined],
      [200, { processed: 'many' }],
      [401, { error: 'unauthorized', message: `credentials rejected: Bearer ${TOKEN}` }], // echoes the token
    ]);
    expect(answers[3]?.text.length).toBeGreaterThan(0);
  });

  it('latency delays every call until reset', async () => {
    sim.inject({ type: 'latency', ms: 150 });
    for (let i = 0; i < 2; i++) {
      const t0 = Date.now();
      expect((await call(req(), { key: `lat-${i}` })).status).toBe(200);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140); // a lower bound: a loaded machine cannot make it early
    }
    // After reset a call answers long before an injected latency would have let it: a latency of ten minutes, and a
    // bound of 30 s that only a missing reset can exceed.
    sim.inject({ type: 'latency', ms: 600_000 });
    sim.reset();
    expect(
      await within(
        call(req()).then((r) => r.status),
        30_000,
      ),
    ).toBe(200);
  });

  it('hang never answers; stop() still returns promptly', async () => {
    const own = new XyraSimulator();
    const url = await own.start();
    own.inject({ type: 'hang' });
    const pending = call(req(), { url, token: null }).then(
      () => 'answered',
      () => 'failed',
    );
    const answered = await Promise.race([pending, new Promise((r) => setTimeout(() => r('still hanging'), 200))]);
    expect(answered).toBe('still hanging');
    expect(own.calls).toHaveLength(1);
    expect(own.calls[0]?.status).toBe(0);
    // The hung call never ends by itself: stop() returning at all (the bound only catches a hang) shows it cut it.
    expect(
      await within(
        own.stop().then(() => 'stopped'),
        30_000,
      ),
    ).toBe('stopped');
    expect(await pending).toBe('failed');
  });

  it('inject() rejects invalid faults', () => {
    expect(() => sim.inject({ type: 'status', status: 99, count: 1 })).toThrow();
    expect(() => sim.inject({ type: 'latency', ms: -1 })).toThrow();
  });
});

describe('XyraSimulator: control endpoints', () => {
  it('POST /_sim/faults injects, GET /_sim/calls lists, POST /_sim/reset clears', async () => {
    const injected = await fetch(`${base}/_sim/faults`, {
      method: 'POST',
      body: JSON.stringify({ type: 'status', status: 500, count: 1 }),
    });
    expect(injected.status).toBe(200);
    expect((await call(req(), { key: 'ctl' })).status).toBe(500);

    const calls = (await (await fetch(`${base}/_sim/calls`)).json()) as RecordedCall[];
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ status: 500, idempotencyKey: 'ctl', body: req() });

    expect((await fetch(`${base}/_sim/reset`, { method: 'POST' })).status).toBe(200);
    expect(sim.calls).toHaveLength(0);
    expect((await call(req())).status).toBe(200);
  });

  it('rejects an invalid fault with 400 and injects nothing', async () => {
    const res = await fetch(`${base}/_sim/faults`, { method: 'POST', body: JSON.stringify({ type: 'explode' }) });
    expect(res.status).toBe(400);
    expect((await call(req())).status).toBe(200);
  });

  it('control calls are not recorded and do not consume faults', async () => {
    sim.inject({ type: 'accepted' });
    await fetch(`${base}/_sim/calls`);
    await fetch(`${base}/healthz`);
    expect(sim.calls).toHaveLength(0);
    expect((await call(req())).status).toBe(202);
  });
});

describe('runStandaloneSimulator', () => {
  it('starts a reachable simulator on the given host', async () => {
    const standalone = await runStandaloneSimulator(0, '127.0.0.1');
    try {
      expect((await fetch(`${standalone.url}/healthz`)).status).toBe(200);
    } finally {
      await standalone.stop();
    }
  });
});
