// One attempt against the Xyra Analytics API, classified per the contract in ARCHITECTURE.md
// ("Contract: Xyra Analytics API call"), plus the backoff used between attempts.
// Retrying is the caller's job (a DBOS step): this module never sleeps and never throws for
// HTTP/network problems, so every failure becomes data the workflow can record.
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { z } from 'zod';

export interface XyraRequest {
  workflow_id: string;
  triggered_at: string;
  batch_size_limit: number;
  /** The schedule's payload, merged in (never workflow_id/triggered_at: the spec refuses them). */
  [field: string]: unknown;
}

export interface XyraClientOptions {
  baseUrl: string;
  token?: string;
  timeoutMs: number;
  connectTimeoutMs: number;
}

interface AttemptBase {
  statusCode: number | null;
  bodyBytes: number;
  durationMs: number;
}

export type AttemptOutcome =
  | (AttemptBase & { kind: 'completed'; processed: number; succeeded: number; failed: number })
  | (AttemptBase & { kind: 'triggered'; processed: number; succeeded: number; failed: number; message?: string })
  | (AttemptBase & { kind: 'skipped'; message: string })
  | (AttemptBase & { kind: 'retryable'; reason: string; retryAfterMs?: number })
  | (AttemptBase & { kind: 'fatal'; reason: string });

export const EVALUATION_BATCHES_PATH = '/v1/evaluation-batches';
export const DEFAULT_SKIP_MESSAGE = 'Batch evaluation already in progress';
/** Larger bodies are refused: a count summary is tiny, so anything this big is broken or hostile. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;
/** Reasons end up in events and logs: keep them one short line. */
const MAX_REASON_CHARS = 300;

const count = z.number().int().nonnegative();
/** Response of a finished batch. Extra fields are tolerated so the API can grow without breaking us. */
export const batchCountsSchema = z.object({ processed: count, succeeded: count, failed: count });
export type BatchCounts = z.infer<typeof batchCountsSchema>;
const skippedBodySchema = z.object({ status: z.literal('skipped'), message: z.string().optional() });
/** Error bodies are free-form; we only lift a human-readable message out of them when present. */
const messageBodySchema = z.object({ message: z.string() }).or(z.object({ error: z.string() }));

type Body = { text: string; truncated: boolean };
/** An outcome before timing/size are attached (Omit distributed over the union so `kind` still narrows). */
type Classified = AttemptOutcome extends infer O
  ? O extends AttemptOutcome
    ? Omit<O, keyof AttemptBase>
    : never
  : never;

/** undici loads on first use: a tenth of the service's module loading, and starting up makes no API call. */
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = () => (undici ??= import('undici'));

export async function callEvaluationBatch(opts: XyraClientOptions, req: XyraRequest): Promise<AttemptOutcome> {
  const { Agent, request } = await loadUndici();
  const started = performance.now();
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  let statusCode: number | null = null;
  // Updated while reading, so an attempt that dies mid-body still reports how much arrived.
  const received = { bytes: 0 };
  let classified: Classified;
  // A fresh dispatcher per attempt: attempts are minutes apart, so pooling buys nothing, and a stale
  // keep-alive socket could otherwise turn a non-idempotent POST into a spurious failure.
  const agent = new Agent({
    connect: { timeout: opts.connectTimeoutMs },
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
  });
  try {
    const url = endpointUrl(opts.baseUrl);
    if (url === undefined) {
      classified = { kind: 'fatal', reason: 'invalid base URL for the Xyra Analytics API' };
    } else {
      const res = await send(request, agent, url, opts, req, timeout);
      statusCode = res.statusCode;
      // The overall signal also covers this read, so a server trickling its body cannot hold us past timeoutMs.
      const body = await readCapped(res.body, MAX_RESPONSE_BYTES, received);
      classified = classifyResponse(res.statusCode, res.headers, body);
    }
  } catch (err) {
    classified = classifyError(err, timeout.aborted, opts);
  } finally {
    await agent.destroy().catch(() => undefined);
  }
  const outcome = {
    ...classified,
    statusCode,
    bodyBytes: received.bytes,
    durationMs: Math.round(performance.now() - started),
  };
  return scrubSecret(outcome, opts.token);
}

/** Joins the API path onto a base URL that may carry a path prefix and/or trailing slash. */
export function endpointUrl(baseUrl: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  url.pathname = url.pathname.replace(/\/+$/, '') + EVALUATION_BATCHES_PATH;
  url.search = '';
  url.hash = '';
  return url;
}

function send(
  request: typeof import('undici').request,
  agent: Dispatcher,
  url: URL,
  opts: XyraClientOptions,
  req: XyraRequest,
  signal: AbortSignal,
) {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    // The workflow ID is stable across retries and recoveries, so the API can de-duplicate our POSTs.
    'idempotency-key': req.workflow_id,
  };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  return request(url, { method: 'POST', headers, body: JSON.stringify(req), dispatcher: agent, signal });
}

async function readCapped(
  body: AsyncIterable<Buffer | Uint8Array>,
  cap: number,
  received: { bytes: number },
): Promise<Body> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) {
    received.bytes += chunk.length;
    if (received.bytes > cap) {
      // Leaving the loop destroys the stream: stop reading rather than buffer a hostile body.
      return { text: '', truncated: true };
    }
    chunks.push(Buffer.from(chunk));
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated: false };
}

function classifyResponse(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  body: Body,
): Classified {
  if (status === 408 || status === 429 || (status >= 500 && status <= 599)) {
    const retryAfterMs = parseRetryAfter(headers['retry-after']);
    const reason = httpReason(status, body);
    return retryAfterMs === undefined ? { kind: 'retryable', reason } : { kind: 'retryable', reason, retryAfterMs };
  }
  if (status === 409) {
    return { kind: 'skipped', message: bodyMessage(body) ?? DEFAULT_SKIP_MESSAGE };
  }
  if (status >= 200 && status <= 299) return classifySuccess(status, body);
  // Other 4xx will not get better by retrying; 1xx/3xx are unexpected (we never follow redirects,
  // which would also forward the bearer token to wherever the redirect points).
  return { kind: 'fatal', reason: httpReason(status, body) };
}

function classifySuccess(status: number, body: Body): Classified {
  if (body.truncated) return { kind: 'fatal', reason: `response body exceeds ${MAX_RESPONSE_BYTES} bytes` };
  const parsed = parseJson(body.text);
  const skipped = skippedBodySchema.safeParse(parsed.ok ? parsed.value : undefined);
  if (skipped.success) return { kind: 'skipped', message: skipped.data.message ?? DEFAULT_SKIP_MESSAGE };

  if (status === 202) {
    // Accepted: the batch runs remotely; counts are optional and the body may be empty.
    const counts = batchCountsSchema.safeParse(parsed.ok ? parsed.value : undefined);
    const c = counts.success ? counts.data : { processed: 0, succeeded: 0, failed: 0 };
    const message = bodyMessage(body);
    const base = { kind: 'triggered' as const, processed: c.processed, succeeded: c.succeeded, failed: c.failed };
    return message === undefined ? base : { ...base, message };
  }
  if (status !== 200 && status !== 201) {
    // 204, 206, ...: not part of the contract, so we cannot tell what happened; retrying would not help.
    return { kind: 'fatal', reason: `unexpected HTTP ${status} response` };
  }
  if (!parsed.ok) return { kind: 'fatal', reason: `malformed response body: ${parsed.error}` };
  const counts = batchCountsSchema.safeParse(parsed.value);
  if (!counts.success)
    return { kind: 'fatal', reason: `response body does not match schema: ${describeIssues(counts.error)}` };
  return { kind: 'completed', ...pickCounts(counts.data) };
}

function pickCounts(c: BatchCounts): BatchCounts {
  // Only the contract's fields: extra response fields must not leak into the outcome/event.
  return { processed: c.processed, succeeded: c.succeeded, failed: c.failed };
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  if (text.trim() === '') return { ok: false, error: 'empty body' };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : 'invalid JSON' };
  }
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

function bodyMessage(body: Body): string | undefined {
  const parsed = parseJson(body.text);
  if (!parsed.ok) return undefined;
  const msg = messageBodySchema.safeParse(parsed.value);
  if (!msg.success) return undefined;
  const text = 'message' in msg.data ? msg.data.message : msg.data.error;
  return text.trim() === '' ? undefined : text;
}

function httpReason(status: number, body: Body): string {
  const msg = body.truncated ? undefined : bodyMessage(body);
  return msg === undefined ? `HTTP ${status}` : `HTTP ${status}: ${msg}`;
}

function classifyError(err: unknown, timedOut: boolean, opts: XyraClientOptions): Classified {
  // Check our own signal first: undici surfaces its abort in several shapes, the signal is unambiguous.
  if (timedOut) return { kind: 'retryable', reason: `timeout after ${opts.timeoutMs} ms` };
  const code = errorCode(err);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { kind: 'retryable', reason: `connect timeout after ${opts.connectTimeoutMs} ms` };
    case 'UND_ERR_HEADERS_TIMEOUT':
      return { kind: 'retryable', reason: `timeout after ${opts.timeoutMs} ms waiting for response headers` };
    case 'UND_ERR_BODY_TIMEOUT':
      return { kind: 'retryable', reason: `timeout after ${opts.timeoutMs} ms reading response body` };
    case 'UND_ERR_SOCKET':
      return { kind: 'retryable', reason: 'connection closed by server' };
  }
  // Bad arguments are our bug or bad configuration: retrying cannot fix them.
  if (code === 'UND_ERR_INVALID_ARG' || code?.startsWith('ERR_INVALID')) {
    return { kind: 'fatal', reason: `invalid request: ${errorMessage(err)}` };
  }
  // Everything else (refused, reset, DNS, TLS, ...) is a connection problem the contract says to retry.
  return { kind: 'retryable', reason: code ? `connection error (${code})` : `connection error: ${errorMessage(err)}` };
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Happy-eyeballs connects (several addresses) fail with an AggregateError whose parts carry the code.
  if (err instanceof AggregateError) return errorCode(err.errors[0]);
  const cause = (err as { cause?: unknown }).cause;
  return cause === undefined ? undefined : errorCode(cause);
}

function errorMessage(err: unknown): string {
  return err instanceof Error && err.message ? err.message : String(err);
}

/** Belt and braces: no returned string may contain the token, whatever a server or library echoed. */
function scrubSecret(outcome: AttemptOutcome, token: string | undefined): AttemptOutcome {
  const clean = (s: string): string => {
    const scrubbed = token ? s.split(token).join('[REDACTED]') : s;
    return scrubbed.length > MAX_REASON_CHARS ? `${scrubbed.slice(0, MAX_REASON_CHARS - 1)}…` : scrubbed;
  };
  const out = { ...outcome };
  if ('reason' in out) out.reason = clean(out.reason);
  if ('message' in out && out.message !== undefined) out.message = clean(out.message);
  return out;
}

/**
 * Delay before the next attempt. `attempt` is the 1-based attempt that just failed.
 * A server's Retry-After is honoured exactly (it knows its own load better than our formula),
 * capped at maxMs so a hostile or buggy value cannot park the workflow for hours.
 * Otherwise exponential backoff with "equal jitter": half the step is fixed, half random. Unlike full
 * jitter it never collapses to ~0, so a struggling API gets real breathing room, while replicas that
 * failed together still spread out.
 */
export function backoffDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const cap = Math.max(0, maxMs);
  if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs)) {
    return Math.round(Math.min(Math.max(0, retryAfterMs), cap));
  }
  const n = Number.isFinite(attempt) ? Math.max(1, Math.floor(attempt)) : 1;
  const step = Math.min(cap, Math.max(0, baseMs) * 2 ** (n - 1)); // 2 ** large → Infinity → capped
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(step / 2 + (step / 2) * r);
}

/** Retry-After as delay-seconds or HTTP-date (RFC 9110 §10.2.3) → milliseconds from `now`. */
export function parseRetryAfter(header: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // Only accept something that looks like a date: Date.parse is lenient (e.g. "1.5" parses as a year).
  if (!/[a-z]/i.test(value)) return undefined;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now); // a date in the past means "now"
}
