// A real HTTP server standing in for the Xyra Analytics API, with fault injection.
// Used in-process by tests and by the service when XYRA_API_URL is unset, and standalone (docker compose),
// where tests in other processes drive it through the /_sim/* control endpoints.
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { createLogger } from '../logger.js';

export type SimulatorFault =
  | { type: 'latency'; ms: number }
  | { type: 'status'; status: number; count: number; retryAfterSeconds?: number; body?: unknown }
  | { type: 'inProgress'; count?: number }
  | { type: 'accepted'; count?: number }
  | { type: 'skippedBody'; count?: number; message?: string }
  | { type: 'malformed'; count?: number }
  | { type: 'schemaViolation'; count?: number }
  | { type: 'hang'; count?: number }
  | { type: 'unauthorized'; count?: number };

export interface RecordedCall {
  at: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
  idempotencyKey: string | null;
  authorization: string | null;
  /** Status answered; 0 while unanswered (a `hang` call stays 0). */
  status: number;
}

export interface SimulatorOptions {
  port?: number;
  host?: string;
  /** When set, API calls without `Bearer <token>` get 401. */
  token?: string;
  /** Varies the default counts, which are otherwise a pure function of workflow_id. */
  seed?: number;
}

const API_PATH = '/v1/evaluation-batches';
const MAX_REQUEST_BYTES = 1024 * 1024;
const IN_PROGRESS_MESSAGE = 'Batch evaluation already in progress';

const countField = z.number().int().min(1).optional();
/** Validates faults arriving over HTTP; typed against SimulatorFault so the two cannot drift apart. */
export const simulatorFaultSchema: z.ZodType<SimulatorFault> = z.discriminatedUnion('type', [
  z.object({ type: z.literal('latency'), ms: z.number().int().min(0).max(600_000) }),
  z.object({
    type: z.literal('status'),
    status: z.number().int().min(200).max(599),
    count: z.number().int().min(1),
    retryAfterSeconds: z.number().int().min(0).optional(),
    body: z.unknown().optional(),
  }),
  z.object({ type: z.literal('inProgress'), count: countField }),
  z.object({ type: z.literal('accepted'), count: countField }),
  z.object({ type: z.literal('skippedBody'), count: countField, message: z.string().optional() }),
  z.object({ type: z.literal('malformed'), count: countField }),
  z.object({ type: z.literal('schemaViolation'), count: countField }),
  z.object({ type: z.literal('hang'), count: countField }),
  z.object({ type: z.literal('unauthorized'), count: countField }),
]);

/** The request body of the contract; the simulator is strict so client bugs show up as 400s in tests. */
export const evaluationRequestSchema = z.object({
  workflow_id: z.string().min(1),
  triggered_at: z.iso.datetime({ offset: true }),
  batch_size_limit: z.number().int().min(1),
});

type QueuedFault = Exclude<SimulatorFault, { type: 'latency' }>;
type Reply = { status: number; body?: unknown; rawBody?: string; headers?: Record<string, string> };

export class XyraSimulator {
  readonly calls: RecordedCall[] = [];
  private readonly faults: { fault: QueuedFault; remaining: number }[] = [];
  /** Replies to the first successful call per idempotency key, replayed for repeats (as the real API does). */
  private readonly replies = new Map<string, Reply>();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private latencyMs = 0;
  /** While set, API calls are recorded and then wait here unanswered (see hold()). */
  private held: { until: Promise<void>; release: () => void } | undefined;
  private server: Server | undefined;
  private baseUrl: string | undefined;

  constructor(private readonly options: SimulatorOptions = {}) {}

  async start(): Promise<string> {
    if (this.baseUrl) return this.baseUrl;
    const server = createServer((req, res) => void this.handle(req, res).catch((err: unknown) => this.fail(res, err)));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    const host = this.options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, host, () => resolve());
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    // A wildcard bind is reachable on loopback; advertise that rather than an unroutable 0.0.0.0.
    const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    this.baseUrl = `http://${shownHost}:${port}`;
    return this.baseUrl;
  }

  /** Closes the server; hanging and keep-alive sockets are destroyed so this returns promptly. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.baseUrl = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.releaseHeld();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  get url(): string {
    if (!this.baseUrl) throw new Error('XyraSimulator is not started');
    return this.baseUrl;
  }

  /** Faults are consumed in FIFO order, one per API call; latency is a setting that applies to all calls. */
  inject(fault: SimulatorFault): void {
    const parsed = simulatorFaultSchema.parse(fault);
    if (parsed.type === 'latency') {
      this.latencyMs = parsed.ms;
      return;
    }
    this.faults.push({ fault: parsed, remaining: parsed.count ?? 1 });
  }

  /**
   * Keep every API call from now on inside the call (recorded, unanswered) until the returned function is
   * called: a test holds a run in its API call for exactly as long as it needs, with no clock involved.
   */
  hold(): () => void {
    if (!this.held) {
      let release = (): void => undefined;
      const until = new Promise<void>((resolve) => (release = resolve));
      this.held = { until, release };
    }
    return () => this.releaseHeld();
  }

  private releaseHeld(): void {
    const held = this.held;
    this.held = undefined;
    held?.release();
  }

  reset(): void {
    this.releaseHeld();
    this.faults.length = 0;
    this.calls.length = 0;
    this.replies.clear();
    this.latencyMs = 0;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://sim').pathname;
    if (path === '/healthz' && req.method === 'GET') return send(res, { status: 200, body: { status: 'ok' } });
    if (path.startsWith('/_sim/')) return this.handleControl(req, res, path);

    const raw = await readBody(req);
    const call = this.record(req, path, raw);
    if (this.latencyMs > 0) await this.sleep(this.latencyMs);
    if (this.held && path === API_PATH) await this.held.until;
    const reply = this.answer(req, path, raw);
    if (reply === 'hang') return; // leave the socket open; stop() or the client ends it
    call.status = reply.status;
    send(res, reply);
  }

  private answer(req: IncomingMessage, path: string, raw: RawBody): Reply | 'hang' {
    if (path !== API_PATH) return { status: 404, body: { error: 'not found' } };
    if (req.method !== 'POST')
      return { status: 405, body: { error: 'method not allowed' }, headers: { allow: 'POST' } };
    // Authenticate before faults, like a real gateway, so a rejected call does not consume an injected fault.
    if (this.options.token && header(req, 'authorization') !== `Bearer ${this.options.token}`) {
      return unauthorizedReply(header(req, 'authorization'));
    }
    const fault = this.nextFault();
    if (fault?.type === 'unauthorized') return unauthorizedReply(header(req, 'authorization'));
    if (fault) return faultReply(fault);
    if (raw.tooLarge) return { status: 413, body: { error: 'request body too large' } };
    return this.evaluate(header(req, 'idempotency-key'), raw);
  }

  private evaluate(idempotencyKey: string | null, raw: RawBody): Reply {
    const parsed = evaluationRequestSchema.safeParse(raw.json);
    if (!parsed.success) {
      const message = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
      return { status: 400, body: { error: 'invalid request', message } };
    }
    const stored = idempotencyKey === null ? undefined : this.replies.get(idempotencyKey);
    if (stored) return stored;
    const reply: Reply = {
      status: 200,
      body: defaultCounts(parsed.data.workflow_id, parsed.data.batch_size_limit, this.options.seed ?? 0),
    };
    if (idempotencyKey !== null) this.replies.set(idempotencyKey, reply);
    return reply;
  }

  private nextFault(): QueuedFault | undefined {
    const head = this.faults[0];
    if (!head) return undefined;
    head.remaining -= 1;
    if (head.remaining <= 0) this.faults.shift();
    return head.fault;
  }

  private record(req: IncomingMessage, path: string, raw: RawBody): RecordedCall {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    // The token is kept only in `authorization`, so dumping `headers` (e.g. in a failing test) does not spread it.
    if (headers.authorization !== undefined) headers.authorization = '[REDACTED]';
    const call: RecordedCall = {
      at: new Date().toISOString(),
      method: req.method ?? 'GET',
      path,
      headers,
      body: raw.json === undefined ? (raw.text === '' ? null : raw.text) : raw.json,
      idempotencyKey: header(req, 'idempotency-key'),
      authorization: header(req, 'authorization'),
      status: 0,
    };
    this.calls.push(call);
    return call;
  }

  private async handleControl(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const route = `${req.method ?? ''} ${path}`;
    if (route === 'GET /_sim/calls') return send(res, { status: 200, body: this.calls });
    if (route === 'POST /_sim/reset') {
      this.reset();
      return send(res, { status: 200, body: { ok: true } });
    }
    if (route === 'POST /_sim/faults') {
      const raw = await readBody(req);
      const fault = simulatorFaultSchema.safeParse(raw.json);
      if (!fault.success)
        return send(res, { status: 400, body: { error: 'invalid fault', message: z.prettifyError(fault.error) } });
      this.inject(fault.data);
      return send(res, { status: 200, body: { ok: true } });
    }
    send(res, { status: 404, body: { error: 'not found' } });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  private fail(res: ServerResponse, err: unknown): void {
    send(res, {
      status: 500,
      body: { error: 'simulator error', message: err instanceof Error ? err.message : String(err) },
    });
  }
}

/**
 * A 401 that echoes the credentials it was given, as careless real gateways do: the client must keep the
 * token out of what it records and logs even when the server hands it back (tests rely on this echo).
 */
function unauthorizedReply(authorization: string | null): Reply {
  return {
    status: 401,
    body: { error: 'unauthorized', message: `credentials rejected: ${authorization ?? '(none)'}` },
  };
}

function faultReply(fault: QueuedFault): Reply | 'hang' {
  switch (fault.type) {
    case 'status': {
      const headers =
        fault.retryAfterSeconds === undefined ? undefined : { 'retry-after': String(fault.retryAfterSeconds) };
      const body = fault.body === undefined ? { error: STATUS_CODES[fault.status] ?? 'injected fault' } : fault.body;
      return headers ? { status: fault.status, body, headers } : { status: fault.status, body };
    }
    case 'inProgress':
      return { status: 409, body: { status: 'skipped', message: IN_PROGRESS_MESSAGE } };
    case 'accepted':
      return { status: 202, body: { status: 'accepted' } };
    case 'skippedBody':
      return { status: 200, body: { status: 'skipped', message: fault.message ?? 'No pending items to evaluate' } };
    case 'malformed':
      return {
        status: 200,
        rawBody: '{"processed": 3, "succeeded": <truncated',
        headers: { 'content-type': 'application/json' },
      };
    case 'schemaViolation':
      return { status: 200, body: { processed: 'many' } };
    case 'unauthorized':
      return { status: 401, body: { error: 'unauthorized' } };
    case 'hang':
      return 'hang';
  }
}

/** Deterministic counts: n in 1..limit from a hash of (seed, workflow_id), a few failures, the rest succeeded. */
export function defaultCounts(
  workflowId: string,
  limit: number,
  seed = 0,
): { processed: number; succeeded: number; failed: number } {
  const h = fnv1a(`${seed}:${workflowId}`);
  const processed = 1 + (h % limit);
  const failed = (h >>> 16) % (Math.min(3, processed) + 1);
  return { processed, succeeded: processed - failed, failed };
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(text, 'utf8')) {
    h ^= ch;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

type RawBody = { text: string; json: unknown; tooLarge: boolean };

async function readBody(req: IncomingMessage): Promise<RawBody> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let tooLarge = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    // Keep draining (so the client sees our 413 rather than a reset) but stop buffering.
    if (bytes > MAX_REQUEST_BYTES) tooLarge = true;
    else chunks.push(chunk);
  }
  const text = tooLarge ? '' : Buffer.concat(chunks).toString('utf8');
  let json: unknown;
  try {
    json = text === '' ? undefined : (JSON.parse(text) as unknown);
  } catch {
    json = undefined;
  }
  return { text, json, tooLarge };
}

function header(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(', ') : v;
}

function send(res: ServerResponse, reply: Reply): void {
  // The client may have given up (timeout) while we were delaying: nothing left to answer.
  if (res.headersSent || res.destroyed) return;
  const payload = reply.rawBody ?? JSON.stringify(reply.body ?? null);
  res.writeHead(reply.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    ...reply.headers,
  });
  res.end(payload);
}

/** Starts a simulator for docker compose / manual runs: logs its URL once, stops on SIGTERM/SIGINT. */
export async function runStandaloneSimulator(
  port: number,
  host = '0.0.0.0',
  options: Omit<SimulatorOptions, 'port' | 'host'> = {},
): Promise<XyraSimulator> {
  const sim = new XyraSimulator({ ...options, port, host });
  const url = await sim.start();
  const logger = createLogger(process.env.LOG_LEVEL ?? 'info');
  logger.info({ url, component: 'xyra-simulator' }, `Xyra Analytics simulator listening on ${url}`);
  const onSignal = (): void => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    // Closing the server empties the event loop, so the process then exits 0 on its own.
    void sim.stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return sim;
}

const standaloneEnv = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  // Loopback unless told otherwise: GET /_sim/calls shows every request body the scheduler sent.
  HOST: z.string().min(1).default('127.0.0.1'),
  XYRA_API_TOKEN: z.string().min(1).optional(),
});

// `node dist/src/simulator/server.js`: PORT (default 8080), HOST, XYRA_API_TOKEN (require this bearer token).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const env = standaloneEnv.safeParse(process.env);
  if (!env.success) {
    process.stderr.write(`xyra simulator: ${z.prettifyError(env.error).replace(/\n/g, ' ')}\n`);
    process.exit(2);
  }
  const { PORT, HOST, XYRA_API_TOKEN } = env.data;
  await runStandaloneSimulator(PORT, HOST, XYRA_API_TOKEN === undefined ? {} : { token: XYRA_API_TOKEN });
}
